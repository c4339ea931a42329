#include "seq/tokenizer.h"

#define N_ MD_TOK_N
#define ROW16 N_, N_, N_, N_, N_, N_, N_, N_, N_, N_, N_, N_, N_, N_, N_, N_

const uint8_t md_tok_from_ascii[256] = {
    ROW16, ROW16, ROW16, ROW16,
    /* 0x40 '@' A B C D E F G H I J K L M N O */
    N_, MD_TOK_A, N_, MD_TOK_C, N_, N_, N_, MD_TOK_G, N_, N_, N_, N_, N_, N_, N_, N_,
    /* 0x50 P Q R S T U ... */
    N_, N_, N_, N_, MD_TOK_T, N_, N_, N_, N_, N_, N_, N_, N_, N_, N_, N_,
    /* 0x60 '`' a b c d e f g ... */
    N_, MD_TOK_A, N_, MD_TOK_C, N_, N_, N_, MD_TOK_G, N_, N_, N_, N_, N_, N_, N_, N_,
    /* 0x70 p q r s t ... */
    N_, N_, N_, N_, MD_TOK_T, N_, N_, N_, N_, N_, N_, N_, N_, N_, N_, N_,
    ROW16, ROW16, ROW16, ROW16, ROW16, ROW16, ROW16, ROW16,
};

const char md_tok_to_ascii[MD_VOCAB_SIZE] = {
    '?', '?', '?', '?', '?', '?', '?', 'A', 'C', 'G', 'T', 'N', '?', '?', '?', '?'};

const uint8_t md_tok_complement[MD_VOCAB_SIZE] = {
    0, 1, 2, 3, 4, 5, 6, MD_TOK_T, MD_TOK_G, MD_TOK_C, MD_TOK_A, MD_TOK_N, 12, 13, 14, 15};

const char *const md_tok_names[MD_VOCAB_SIZE] = {
    "[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]",
    "A", "C", "G", "T", "N", "[PAD12]", "[PAD13]", "[PAD14]", "[PAD15]"};

void md_tokenize(const char *seq, size_t n, uint8_t *tokens)
{
    for (size_t i = 0; i < n; i++) tokens[i] = md_tok_from_ascii[(uint8_t)seq[i]];
}

void md_detokenize(const uint8_t *tokens, size_t n, char *seq)
{
    for (size_t i = 0; i < n; i++) seq[i] = md_tok_to_ascii[tokens[i] & (MD_VOCAB_SIZE - 1)];
}

void md_tok_revcomp(uint8_t *t, size_t n)
{
    for (size_t i = 0, j = n; i < j--; i++) {
        uint8_t a = md_tok_complement[t[i] & 15], b = md_tok_complement[t[j] & 15];
        t[i] = b;
        t[j] = a;
    }
}
