/*
 * cmd_tokenize.h -- `tftx tokenize FILE.cfg [DOC...]`: run an experiment's
 * tokenizer (and, with --clean, its data.clean steps) on documents and
 * print their token ids.
 */
#ifndef TFTX_HOST_CMD_TOKENIZE_H
#define TFTX_HOST_CMD_TOKENIZE_H

#define CMD_TOKENIZE_USAGE                                                                                             \
    "  tokenize FILE [--clean] [--special] [--tokens] [--set KEY=VALUE]... [DOC...]\n"                                 \
    "                          print the token ids of each document (a file, or stdin)\n"

/* argv[0] is the experiment file (the words after "tokenize"). Returns the
 * exit status: 0 ok, 1 a document could not be read, 2 invalid input. */
int cmd_tokenize(int argc, char **argv);

#endif
