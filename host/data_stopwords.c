/*
 * data_stopwords.c -- the built-in English stopword list of the `stopwords`
 * cleaning step.
 *
 * Written for tftx (not taken from another project or list): English
 * function words -- articles, pronouns and their possessives, auxiliary and
 * modal verbs with their contracted forms, prepositions, conjunctions,
 * determiners and quantifiers, and a few very frequent adverbs. Words that
 * often carry meaning in classification (not, no, nor, never, against) are
 * left out on purpose. Lowercase; apostrophes are ASCII.
 */
#include "data_clean.h"

const char *const DATA_STOPWORDS_EN[] = {
    /* articles and determiners */
    "a", "an", "the", "this", "that", "these", "those", "each", "every", "either", "neither", "some", "any",
    "such", "both", "all", "another", "other", "others", "own", "same", "much", "many", "more", "most",
    "few", "fewer", "less", "least", "several", "enough",
    /* personal pronouns and possessives */
    "i", "me", "my", "mine", "myself", "we", "us", "our", "ours", "ourselves", "you", "your", "yours",
    "yourself", "yourselves", "he", "him", "his", "himself", "she", "her", "hers", "herself", "it", "its",
    "itself", "they", "them", "their", "theirs", "themselves", "one", "oneself",
    /* question and relative words */
    "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "whether", "whatever",
    "whichever", "whoever", "wherever", "whenever",
    /* auxiliaries and modals */
    "am", "is", "are", "was", "were", "be", "been", "being", "have", "has", "had", "having", "do", "does",
    "did", "doing", "done", "will", "would", "shall", "should", "can", "could", "may", "might", "must",
    "ought",
    /* contracted forms */
    "i'm", "i've", "i'd", "i'll", "you're", "you've", "you'd", "you'll", "he's", "he'd", "he'll", "she's",
    "she'd", "she'll", "it's", "it'd", "it'll", "we're", "we've", "we'd", "we'll", "they're", "they've",
    "they'd", "they'll", "that's", "there's", "here's", "what's", "who's", "let's",
    /* prepositions */
    "about", "above", "across", "after", "along", "among", "around", "as", "at", "before", "behind",
    "below", "beneath", "beside", "between", "beyond", "by", "down", "during", "for", "from", "in",
    "inside", "into", "near", "of", "off", "on", "onto", "out", "outside", "over", "past", "per", "since",
    "through", "throughout", "till", "to", "toward", "towards", "under", "until", "up", "upon", "via",
    "with", "within", "without",
    /* conjunctions */
    "and", "or", "but", "if", "because", "while", "although", "though", "unless", "whereas", "so", "than",
    "then", "once",
    /* frequent adverbs and particles */
    "also", "again", "just", "only", "very", "too", "here", "there", "now", "still", "yet", "even", "ever",
    "quite", "rather", "really", "else", "further", "thus", "hence", "therefore", "however", "indeed",
    NULL,
};
