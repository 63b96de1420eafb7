# tftx_add_plugin(KIND NAME SOURCES...)
#
# Builds a tftx plugin: a shared object named tftx_<KIND>_<NAME>.so with
# hidden symbol visibility (only tftx_plugin_entry is exported), linked
# against nothing of the host. Used by the project itself and, through
# find_package(tftx), by plugins built out of tree.
function(tftx_add_plugin kind name)
  set(valid optimizer model tokenizer backend)
  if(NOT kind IN_LIST valid)
    message(FATAL_ERROR "tftx_add_plugin: kind must be one of ${valid}, got '${kind}'")
  endif()
  set(target tftx_${kind}_${name})
  add_library(${target} MODULE ${ARGN})
  target_link_libraries(${target} PRIVATE tftx::sdk)
  set_target_properties(${target} PROPERTIES
    PREFIX "" OUTPUT_NAME ${target}
    C_VISIBILITY_PRESET hidden CXX_VISIBILITY_PRESET hidden CUDA_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(DEFINED TFTX_PLUGIN_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${TFTX_PLUGIN_OUTPUT_DIR})
  endif()
  if(DEFINED TFTX_PLUGIN_INSTALL_DIR AND PROJECT_NAME STREQUAL "tftx")
    install(TARGETS ${target} LIBRARY DESTINATION ${TFTX_PLUGIN_INSTALL_DIR})
  endif()
endfunction()
