#!/usr/bin/env python3
"""wordpiece_reference.py -- an independent Python rendering of BERT's
tokenization (BasicTokenizer + WordpieceTokenizer as described in the BERT
paper's code release), used to cross-check the expected ids written in
test_wordpiece.c. Written for tftx from the algorithm's description; it uses
Python's own unicodedata, so it checks the C plugin's utf8proc tables too.

usage: wordpiece_reference.py VOCAB.txt [--cased] < lines   (one text per line,
       backslash escapes decoded) -> one line of ids per input line
"""
import sys
import unicodedata


def is_whitespace(c):
    return c in " \t\n\r" or unicodedata.category(c) == "Zs"


def is_control(c):
    if c in "\t\n\r":
        return False
    return unicodedata.category(c).startswith("C")


def is_punctuation(c):
    cp = ord(c)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(c).startswith("P")


def is_cjk(cp):
    return any(lo <= cp <= hi for lo, hi in [
        (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
        (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)])


def basic(text, lower):
    out = []
    for c in text:
        cp = ord(c)
        if cp == 0 or cp == 0xFFFD or is_control(c):
            continue
        if is_whitespace(c):
            out.append(" ")
        elif is_cjk(cp):
            out.append(" " + c + " ")
        else:
            out.append(c)
    words = []
    for tok in "".join(out).split():
        if lower:
            tok = tok.lower()
            tok = "".join(c for c in unicodedata.normalize("NFD", tok) if unicodedata.category(c) != "Mn")
        cur = []
        for c in tok:
            if is_punctuation(c):
                if cur:
                    words.append("".join(cur))
                    cur = []
                words.append(c)
            else:
                cur.append(c)
        if cur:
            words.append("".join(cur))
    return " ".join(words).split()


def wordpiece(word, vocab, max_chars=100):
    if len(word) > max_chars:
        return [vocab["[UNK]"]]
    ids, start = [], 0
    while start < len(word):
        end, found = len(word), None
        while start < end:
            piece = ("##" if start else "") + word[start:end]
            if piece in vocab:
                found = vocab[piece]
                break
            end -= 1
        if found is None:
            return [vocab["[UNK]"]]
        ids.append(found)
        start = end
    return ids


def main():
    vocab = {}
    with open(sys.argv[1], encoding="utf-8") as f:
        for i, line in enumerate(f):
            vocab[line.strip()] = i
    lower = "--cased" not in sys.argv
    for line in sys.stdin.buffer:
        text = line.rstrip(b"\n").decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")
        ids = [i for w in basic(text, lower) for i in wordpiece(w, vocab)]
        print(" ".join(map(str, ids)))


if __name__ == "__main__":
    main()
