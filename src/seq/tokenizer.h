/* The DNA tokenizer, with HyenaDNA's character ids so that checkpoints and
 * token files interoperate:
 *   [CLS]=0 [SEP]=1 [BOS]=2 [MASK]=3 [PAD]=4 [RESERVED]=5 [UNK]=6
 *   A=7 C=8 G=9 T=10 N=11, vocabulary padded to 16.
 * Lowercase (soft-masked) bases fold to uppercase; every other byte,
 * IUPAC ambiguity codes included, becomes N.
 */
#ifndef MD_SEQ_TOKENIZER_H
#define MD_SEQ_TOKENIZER_H

#include <stdint.h>
#include <stddef.h>

enum {
    MD_TOK_CLS = 0, MD_TOK_SEP = 1, MD_TOK_BOS = 2, MD_TOK_MASK = 3,
    MD_TOK_PAD = 4, MD_TOK_RESERVED = 5, MD_TOK_UNK = 6,
    MD_TOK_A = 7, MD_TOK_C = 8, MD_TOK_G = 9, MD_TOK_T = 10, MD_TOK_N = 11,
    MD_VOCAB_SIZE = 16     /* padded from 12 for aligned embedding rows */
};

/* ASCII byte -> token id; every byte maps to A..N. */
extern const uint8_t md_tok_from_ascii[256];
/* Token id -> uppercase ASCII; special tokens map to '?'. */
extern const char md_tok_to_ascii[MD_VOCAB_SIZE];
/* Token id -> its complement (A<->T, C<->G); others map to themselves. */
extern const uint8_t md_tok_complement[MD_VOCAB_SIZE];
/* The tokens' printable names, "[CLS]" ... "N", for checkpoints' metadata. */
extern const char *const md_tok_names[MD_VOCAB_SIZE];

void md_tokenize(const char *seq, size_t n, uint8_t *tokens);
/* Writes n characters, no terminating NUL. */
void md_detokenize(const uint8_t *tokens, size_t n, char *seq);
/* Reverse-complements tokens in place. */
void md_tok_revcomp(uint8_t *tokens, size_t n);
/* 1 for A, C, G, T: the tokens a language-model loss is taken over. */
static inline int md_tok_is_base(uint8_t t) { return t >= MD_TOK_A && t <= MD_TOK_T; }

#endif
