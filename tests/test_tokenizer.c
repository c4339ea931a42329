/* The tokenizer against HyenaDNA's character ids, written out here as plain
 * numbers so that a change to the header's constants is caught too. */
#include <stdint.h>
#include <string.h>

#include "seq/tokenizer.h"
#include "testutil.h"
#include "util/rng.h"

static void test_ids(void)
{
    /* The HyenaDNA CharacterTokenizer's ids, as literal numbers. */
    CHECK(MD_TOK_CLS == 0, "[CLS]");
    CHECK(MD_TOK_SEP == 1, "[SEP]");
    CHECK(MD_TOK_BOS == 2, "[BOS]");
    CHECK(MD_TOK_MASK == 3, "[MASK]");
    CHECK(MD_TOK_PAD == 4, "[PAD]");
    CHECK(MD_TOK_RESERVED == 5, "[RESERVED]");
    CHECK(MD_TOK_UNK == 6, "[UNK]");
    CHECK(MD_TOK_A == 7 && MD_TOK_C == 8 && MD_TOK_G == 9 && MD_TOK_T == 10 && MD_TOK_N == 11, "bases");
    CHECK(MD_VOCAB_SIZE == 16, "vocab %d", (int)MD_VOCAB_SIZE);

    uint8_t t[5];
    md_tokenize("ACGTN", 5, t);
    const uint8_t literal[5] = {7, 8, 9, 10, 11};
    const uint8_t named[5] = {MD_TOK_A, MD_TOK_C, MD_TOK_G, MD_TOK_T, MD_TOK_N};
    CHECK(!memcmp(t, literal, 5), "ACGTN -> %d %d %d %d %d", t[0], t[1], t[2], t[3], t[4]);
    CHECK(!memcmp(t, named, 5), "ACGTN against the constants");

    const char *names[12] = {"[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]",
                             "A", "C", "G", "T", "N"};
    for (int i = 0; i < 12; i++) CHECK(!strcmp(md_tok_names[i], names[i]), "name of %d: %s", i, md_tok_names[i]);
    for (int i = 0; i < 7; i++) CHECK(md_tok_to_ascii[i] == '?', "special %d prints as %c", i, md_tok_to_ascii[i]);
    CHECK(!md_tok_is_base(6) && md_tok_is_base(7) && md_tok_is_base(10) && !md_tok_is_base(11), "is_base");
}

static void test_bytes(void)
{
    /* lowercase folds to uppercase */
    uint8_t up[4], lo[4];
    md_tokenize("ACGT", 4, up);
    md_tokenize("acgt", 4, lo);
    CHECK(!memcmp(up, lo, 4), "acgt folds to ACGT");
    CHECK(md_tok_from_ascii['n'] == 11 && md_tok_from_ascii['N'] == 11, "n and N");

    /* every IUPAC ambiguity code, either case, is N */
    const char *iupac = "RYKMSWBDHVNrykmswbdhvn";
    for (const char *p = iupac; *p; p++)
        CHECK(md_tok_from_ascii[(uint8_t)*p] == 11, "IUPAC %c -> %d", *p, md_tok_from_ascii[(uint8_t)*p]);

    /* every byte other than ACGT/acgt is N, including U, gaps, NUL and high bytes */
    for (int b = 0; b < 256; b++) {
        int expect = 11;
        switch (b) {
        case 'A': case 'a': expect = 7; break;
        case 'C': case 'c': expect = 8; break;
        case 'G': case 'g': expect = 9; break;
        case 'T': case 't': expect = 10; break;
        }
        CHECK(md_tok_from_ascii[b] == expect, "byte 0x%02x -> %d, expected %d", b, md_tok_from_ascii[b], expect);
        char c = (char)b;
        uint8_t t = 0;
        md_tokenize(&c, 1, &t);
        CHECK(t == expect, "md_tokenize of byte 0x%02x", b);
    }
}

static void test_round_trip(void)
{
    md_rng_t rng;
    md_rng_seed(&rng, 11);
    char s[1000], back[1000];
    uint8_t t[1000];
    for (int rep = 0; rep < 200; rep++) {
        size_t n = md_rng_below(&rng, sizeof s);
        for (size_t i = 0; i < n; i++) s[i] = "ACGTN"[md_rng_below(&rng, 5)];
        md_tokenize(s, n, t);
        memset(back, 0, sizeof back);
        md_detokenize(t, n, back);
        CHECK(!memcmp(s, back, n), "round trip of %zu bases", n);
        int in_range = 1;
        for (size_t i = 0; i < n; i++) in_range &= t[i] >= 7 && t[i] <= 11;
        CHECK(in_range, "tokens in 7..11");
    }
}

/* The reverse complement, written the obvious way on letters. */
static void naive_revcomp(const char *s, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[n - 1 - i], r = 'N';
        if (c == 'A') r = 'T';
        else if (c == 'C') r = 'G';
        else if (c == 'G') r = 'C';
        else if (c == 'T') r = 'A';
        out[i] = r;
    }
}

static void test_revcomp(void)
{
    md_rng_t rng;
    md_rng_seed(&rng, 12);
    char s[80], expect[80], got[80];
    uint8_t t[80], orig[80];
    for (size_t n = 0; n <= 64; n++) {   /* odd and even lengths, 0 and 1 included */
        for (int rep = 0; rep < 20; rep++) {
            for (size_t i = 0; i < n; i++) s[i] = "ACGTN"[md_rng_below(&rng, 5)];
            naive_revcomp(s, n, expect);
            md_tokenize(s, n, t);
            memcpy(orig, t, n);
            /* a canary past the end must survive */
            t[n] = 0xEE;
            md_tok_revcomp(t, n);
            CHECK(t[n] == 0xEE, "revcomp of %zu wrote past the end", n);
            md_detokenize(t, n, got);
            CHECK(!memcmp(got, expect, n), "revcomp of length %zu: %.*s vs %.*s", n, (int)n, got, (int)n, expect);
            md_tok_revcomp(t, n);
            CHECK(!memcmp(t, orig, n), "revcomp twice is the identity at length %zu", n);
        }
    }
    /* specials are their own complement */
    for (int i = 0; i < 7; i++) CHECK(md_tok_complement[i] == i, "complement of special %d", i);
    CHECK(md_tok_complement[MD_TOK_N] == MD_TOK_N, "N");
}

int main(void)
{
    test_ids();
    test_bytes();
    test_round_trip();
    test_revcomp();
    return md_test_done();
}
