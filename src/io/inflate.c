/* DEFLATE decoder (RFC 1951) and gzip wrapper (RFC 1952).
 *
 * Whole-buffer design: the complete output stays in memory, so back-references read it directly and
 * no sliding window is kept. Huffman codes are decoded through two-level lookup tables (a primary
 * table indexed by the next few bits, subtables for longer codes) instead of walking a tree bit by
 * bit. Bits come from a 64-bit buffer that reads zeros past the end of the input; running past the
 * real end is detected by counting consumed bits and reported as VITQ_ERR_TRUNCATED. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "io/inflate.h"

/* ---- CRC-32 (reflected polynomial 0xEDB88320), table generated from the polynomial ------------- */

static const uint32_t crc_table[256] = {
    0x00000000u, 0x77073096u, 0xee0e612cu, 0x990951bau, 0x076dc419u, 0x706af48fu,
    0xe963a535u, 0x9e6495a3u, 0x0edb8832u, 0x79dcb8a4u, 0xe0d5e91eu, 0x97d2d988u,
    0x09b64c2bu, 0x7eb17cbdu, 0xe7b82d07u, 0x90bf1d91u, 0x1db71064u, 0x6ab020f2u,
    0xf3b97148u, 0x84be41deu, 0x1adad47du, 0x6ddde4ebu, 0xf4d4b551u, 0x83d385c7u,
    0x136c9856u, 0x646ba8c0u, 0xfd62f97au, 0x8a65c9ecu, 0x14015c4fu, 0x63066cd9u,
    0xfa0f3d63u, 0x8d080df5u, 0x3b6e20c8u, 0x4c69105eu, 0xd56041e4u, 0xa2677172u,
    0x3c03e4d1u, 0x4b04d447u, 0xd20d85fdu, 0xa50ab56bu, 0x35b5a8fau, 0x42b2986cu,
    0xdbbbc9d6u, 0xacbcf940u, 0x32d86ce3u, 0x45df5c75u, 0xdcd60dcfu, 0xabd13d59u,
    0x26d930acu, 0x51de003au, 0xc8d75180u, 0xbfd06116u, 0x21b4f4b5u, 0x56b3c423u,
    0xcfba9599u, 0xb8bda50fu, 0x2802b89eu, 0x5f058808u, 0xc60cd9b2u, 0xb10be924u,
    0x2f6f7c87u, 0x58684c11u, 0xc1611dabu, 0xb6662d3du, 0x76dc4190u, 0x01db7106u,
    0x98d220bcu, 0xefd5102au, 0x71b18589u, 0x06b6b51fu, 0x9fbfe4a5u, 0xe8b8d433u,
    0x7807c9a2u, 0x0f00f934u, 0x9609a88eu, 0xe10e9818u, 0x7f6a0dbbu, 0x086d3d2du,
    0x91646c97u, 0xe6635c01u, 0x6b6b51f4u, 0x1c6c6162u, 0x856530d8u, 0xf262004eu,
    0x6c0695edu, 0x1b01a57bu, 0x8208f4c1u, 0xf50fc457u, 0x65b0d9c6u, 0x12b7e950u,
    0x8bbeb8eau, 0xfcb9887cu, 0x62dd1ddfu, 0x15da2d49u, 0x8cd37cf3u, 0xfbd44c65u,
    0x4db26158u, 0x3ab551ceu, 0xa3bc0074u, 0xd4bb30e2u, 0x4adfa541u, 0x3dd895d7u,
    0xa4d1c46du, 0xd3d6f4fbu, 0x4369e96au, 0x346ed9fcu, 0xad678846u, 0xda60b8d0u,
    0x44042d73u, 0x33031de5u, 0xaa0a4c5fu, 0xdd0d7cc9u, 0x5005713cu, 0x270241aau,
    0xbe0b1010u, 0xc90c2086u, 0x5768b525u, 0x206f85b3u, 0xb966d409u, 0xce61e49fu,
    0x5edef90eu, 0x29d9c998u, 0xb0d09822u, 0xc7d7a8b4u, 0x59b33d17u, 0x2eb40d81u,
    0xb7bd5c3bu, 0xc0ba6cadu, 0xedb88320u, 0x9abfb3b6u, 0x03b6e20cu, 0x74b1d29au,
    0xead54739u, 0x9dd277afu, 0x04db2615u, 0x73dc1683u, 0xe3630b12u, 0x94643b84u,
    0x0d6d6a3eu, 0x7a6a5aa8u, 0xe40ecf0bu, 0x9309ff9du, 0x0a00ae27u, 0x7d079eb1u,
    0xf00f9344u, 0x8708a3d2u, 0x1e01f268u, 0x6906c2feu, 0xf762575du, 0x806567cbu,
    0x196c3671u, 0x6e6b06e7u, 0xfed41b76u, 0x89d32be0u, 0x10da7a5au, 0x67dd4accu,
    0xf9b9df6fu, 0x8ebeeff9u, 0x17b7be43u, 0x60b08ed5u, 0xd6d6a3e8u, 0xa1d1937eu,
    0x38d8c2c4u, 0x4fdff252u, 0xd1bb67f1u, 0xa6bc5767u, 0x3fb506ddu, 0x48b2364bu,
    0xd80d2bdau, 0xaf0a1b4cu, 0x36034af6u, 0x41047a60u, 0xdf60efc3u, 0xa867df55u,
    0x316e8eefu, 0x4669be79u, 0xcb61b38cu, 0xbc66831au, 0x256fd2a0u, 0x5268e236u,
    0xcc0c7795u, 0xbb0b4703u, 0x220216b9u, 0x5505262fu, 0xc5ba3bbeu, 0xb2bd0b28u,
    0x2bb45a92u, 0x5cb36a04u, 0xc2d7ffa7u, 0xb5d0cf31u, 0x2cd99e8bu, 0x5bdeae1du,
    0x9b64c2b0u, 0xec63f226u, 0x756aa39cu, 0x026d930au, 0x9c0906a9u, 0xeb0e363fu,
    0x72076785u, 0x05005713u, 0x95bf4a82u, 0xe2b87a14u, 0x7bb12baeu, 0x0cb61b38u,
    0x92d28e9bu, 0xe5d5be0du, 0x7cdcefb7u, 0x0bdbdf21u, 0x86d3d2d4u, 0xf1d4e242u,
    0x68ddb3f8u, 0x1fda836eu, 0x81be16cdu, 0xf6b9265bu, 0x6fb077e1u, 0x18b74777u,
    0x88085ae6u, 0xff0f6a70u, 0x66063bcau, 0x11010b5cu, 0x8f659effu, 0xf862ae69u,
    0x616bffd3u, 0x166ccf45u, 0xa00ae278u, 0xd70dd2eeu, 0x4e048354u, 0x3903b3c2u,
    0xa7672661u, 0xd06016f7u, 0x4969474du, 0x3e6e77dbu, 0xaed16a4au, 0xd9d65adcu,
    0x40df0b66u, 0x37d83bf0u, 0xa9bcae53u, 0xdebb9ec5u, 0x47b2cf7fu, 0x30b5ffe9u,
    0xbdbdf21cu, 0xcabac28au, 0x53b39330u, 0x24b4a3a6u, 0xbad03605u, 0xcdd70693u,
    0x54de5729u, 0x23d967bfu, 0xb3667a2eu, 0xc4614ab8u, 0x5d681b02u, 0x2a6f2b94u,
    0xb40bbe37u, 0xc30c8ea1u, 0x5a05df1bu, 0x2d02ef8du,
};

uint32_t vitq_i_crc32(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = crc_table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

/* Slicing-by-8: table k advances a byte through k further zero bytes, so eight input bytes are folded
 * per step. The tables live in the decoder's heap block, built per call (no global mutable state). */
static void crc_slices_init(uint32_t *t) {
    memcpy(t, crc_table, sizeof crc_table);
    for (size_t i = 256; i < 8 * 256; i++) t[i] = (t[i - 256] >> 8) ^ crc_table[t[i - 256] & 0xFF];
}

static uint32_t crc_sliced(const uint32_t *t, uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    for (; n >= 8; p += 8, n -= 8) {
        uint32_t lo = crc ^ (p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        uint32_t hi = p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
        crc = t[7 * 256 + (lo & 0xFF)] ^ t[6 * 256 + ((lo >> 8) & 0xFF)] ^ t[5 * 256 + ((lo >> 16) & 0xFF)] ^
              t[4 * 256 + (lo >> 24)] ^ t[3 * 256 + (hi & 0xFF)] ^ t[2 * 256 + ((hi >> 8) & 0xFF)] ^
              t[1 * 256 + ((hi >> 16) & 0xFF)] ^ t[hi >> 24];
    }
    for (; n; p++, n--) crc = t[(crc ^ *p) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

/* ---- Bit reader -------------------------------------------------------------------------------- */

typedef struct {
    const uint8_t *src;
    size_t n;
    size_t pos;   /* next byte to load into buf; may pass n, zeros are loaded there */
    uint64_t buf; /* unconsumed bits, next bit in bit 0 */
    unsigned cnt; /* number of valid bits in buf */
} bitreader;

static inline uint64_t load_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* Top the buffer up to at least 56 bits: enough for a length code, its extra bits, a distance code
 * and its extra bits (15 + 5 + 15 + 13 = 48) without another refill. Away from the end, one 8-byte
 * load adds as many whole bytes as fit; the bits above `cnt` it leaves behind are the true next
 * bits, so OR-ing the same byte in again later changes nothing. */
static inline void br_refill(bitreader *b) {
    if (b->cnt >= 56) return;
    if (b->pos + 8 <= b->n) {
        b->buf |= load_le64(b->src + b->pos) << b->cnt;
        b->pos += (63 - b->cnt) >> 3;
        b->cnt |= 56;
        return;
    }
    while (b->cnt < 56) {
        uint64_t byte = b->pos < b->n ? b->src[b->pos] : 0;
        b->buf |= byte << b->cnt;
        b->pos++;
        b->cnt += 8;
    }
}

static inline uint32_t br_take(bitreader *b, unsigned k) {
    uint32_t v = (uint32_t)(b->buf & ((UINT64_C(1) << k) - 1));
    b->buf >>= k;
    b->cnt -= k;
    return v;
}

/* Bytes consumed so far (rounded down) and whether any consumed bit lay past the input. */
static inline size_t br_consumed(const bitreader *b) { return b->pos - b->cnt / 8; }
static inline int br_overrun(const bitreader *b) { return b->pos > b->n && (b->pos - b->n) * 8 > b->cnt; }
/* Fewer than k real bits left. Invalid table entries only occur in codes allowed to be incomplete
 * (one code of length 1, or no code at all), where the first bit already decides, so an invalid code
 * means truncation only when not even that bit is real. */
static inline int br_short(const bitreader *b, unsigned k) { return b->pos > b->n && b->cnt < (b->pos - b->n) * 8 + k; }

/* ---- Huffman tables ---------------------------------------------------------------------------- */

/* Entry: bits 0-15 symbol (or subtable offset), 16-23 code length (or subtable index bits), 24-31
 * kind. Kind 0 entries are valid symbols, so a plain entry is just sym | len << 16. */
#define E_SYM 0u
#define E_LINK 1u
#define E_INVALID 2u
#define ENTRY(kind, len, val) ((uint32_t)(kind) << 24 | (uint32_t)(len) << 16 | (uint32_t)(val))

#define LIT_BITS 10 /* primary index bits of the literal/length table */
#define DIST_BITS 8
#define CL_BITS 7 /* code-length codes are at most 7 bits: no subtables */
/* Subtables: at most one per code longer than the primary bits, each at most 2^(15 - primary). */
#define LIT_CAP ((1u << LIT_BITS) + 288u * (1u << (15 - LIT_BITS)))
#define DIST_CAP ((1u << DIST_BITS) + 32u * (1u << (15 - DIST_BITS)))

enum { BUILD_OK = 0, BUILD_OVER, BUILD_INCOMPLETE };

/* Build the decoding table of a canonical code from its code lengths (0 = unused). An incomplete
 * code is refused unless `allow_single` and it is a single code of length 1 (RFC 1951 allows a
 * one-code distance tree); a set without any code builds a table of invalid entries. */
static int huff_build(uint32_t *t, size_t cap, unsigned pbits, const uint8_t *lens, unsigned n,
                      int allow_single) {
    unsigned count[16] = {0}, offs[16];
    uint16_t sorted[288];
    for (unsigned i = 0; i < n; i++) count[lens[i]]++;
    count[0] = 0;
    int left = 1;
    unsigned maxlen = 0;
    for (unsigned len = 1; len <= 15; len++) {
        left = left * 2 - (int)count[len];
        if (left < 0) return BUILD_OVER;
        if (count[len]) maxlen = len;
    }
    if (left > 0 && maxlen > 0 && !(allow_single && maxlen == 1)) return BUILD_INCOMPLETE;

    /* Symbols ordered by (length, symbol value): the order canonical codes are assigned in. */
    offs[1] = 0;
    for (unsigned len = 1; len < 15; len++) offs[len + 1] = offs[len] + count[len];
    for (unsigned i = 0; i < n; i++)
        if (lens[i]) sorted[offs[lens[i]]++] = (uint16_t)i;
    unsigned total = offs[15];

    size_t psize = (size_t)1 << pbits, used = psize;
    for (size_t i = 0; i < psize; i++) t[i] = ENTRY(E_INVALID, 0, 0);
    unsigned sbits = maxlen > pbits ? maxlen - pbits : 0;
    uint32_t code = 0; /* canonical code, first bit in the most significant position */
    unsigned prev_len = 0;
    for (unsigned k = 0; k < total; k++) {
        unsigned sym = sorted[k], len = lens[sym];
        code <<= len - prev_len;
        prev_len = len;
        /* The stream sends the code's first bit first, i.e. into bit 0 of the bit buffer. */
        uint32_t rev = 0;
        for (unsigned b = 0; b < len; b++) rev |= ((code >> b) & 1u) << (len - 1 - b);
        code++;
        if (len <= pbits) {
            for (size_t i = rev; i < psize; i += (size_t)1 << len) t[i] = ENTRY(E_SYM, len, sym);
            continue;
        }
        uint32_t *pe = &t[rev & (psize - 1)];
        if ((*pe >> 24) != E_LINK) {
            size_t ssize = (size_t)1 << sbits;
            if (used + ssize > cap) return BUILD_OVER; /* cannot happen for a prefix-free code */
            for (size_t i = 0; i < ssize; i++) t[used + i] = ENTRY(E_INVALID, 0, 0);
            *pe = ENTRY(E_LINK, sbits, used);
            used += ssize;
        }
        uint32_t *sub = &t[*pe & 0xFFFF];
        for (size_t i = rev >> pbits; i < ((size_t)1 << sbits); i += (size_t)1 << (len - pbits))
            sub[i] = ENTRY(E_SYM, len, sym);
    }
    return BUILD_OK;
}

static inline uint32_t huff_lookup(const uint32_t *t, unsigned pbits, uint64_t bits) {
    uint32_t e = t[bits & ((1u << pbits) - 1)];
    if ((e >> 24) == E_LINK) e = t[(e & 0xFFFF) + ((bits >> pbits) & ((1u << ((e >> 16) & 0xFF)) - 1))];
    return e;
}

/* ---- Decoder ----------------------------------------------------------------------------------- */

static const uint16_t len_base[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                      31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                      2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t dist_base[30] = {1,    2,    3,    4,    5,    7,     9,     13,    17,  25,
                                       33,   49,   65,   97,   129,  193,   257,   385,   513, 769,
                                       1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const uint8_t dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                       6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
/* Order in which code-length code lengths are sent. */
static const uint8_t cl_order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};

typedef struct {
    uint32_t lit[LIT_CAP];
    uint32_t dist[DIST_CAP];
    uint32_t cl[1u << CL_BITS];
    uint32_t crc[8 * 256];
} tables;

typedef struct {
    const vitq_allocator *a;
    const char *name;
    tables *tab;
    uint8_t *out;
    size_t len, cap;
    size_t stream_start; /* output offset where the current stream began: distances stop there */
    size_t base;         /* offset of the current stream within the caller's buffer, for messages */
    size_t limit;        /* most output allowed (SIZE_MAX: none) */
    const char *why;     /* where the limit comes from, for the message */
    int peek;            /* reaching the limit ends decoding successfully (vitq_i_gzip_peek) */
    int stopped;         /* decoding ended at the limit in peek mode */
} inflater;

/* Report a decoding error at the current position: TRUNCATED when the bits that led to it were
 * already past the end of the input (the zero padding decoded as garbage), CORRUPT_DATA otherwise. */
static vitq_status bad(const inflater *z, const bitreader *b, const char *fmt, ...) VITQ_I_PRINTF(3, 4);
static vitq_status bad(const inflater *z, const bitreader *b, const char *fmt, ...) {
    if (br_overrun(b))
        return vitq_i_fail(VITQ_ERR_TRUNCATED, "%s: compressed data ends early (deflate stream at byte %zu "
                           "needs more than its %zu bytes)", z->name, z->base, b->n);
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return vitq_i_fail(VITQ_ERR_CORRUPT_DATA, "%s: corrupt deflate data near byte %zu: %s", z->name,
                       z->base + br_consumed(b), msg);
}

static vitq_status truncated(const inflater *z, size_t at) {
    return vitq_i_fail(VITQ_ERR_TRUNCATED, "%s: compressed data ends early (at byte %zu)", z->name, at);
}

/* Room for the output past the limit that a match's 8-byte copies may touch (never kept). */
#define SLACK (258 + 8)

/* The next output would pass the limit. In peek mode the caller stores what fits and stops
 * (z->stopped, with VITQ_ERR_FORMAT only as a signal that unwinds the decoder: no message is set);
 * otherwise this is the error. */
static vitq_status over_limit(inflater *z) {
    if (z->peek) {
        z->stopped = 1;
        return VITQ_ERR_FORMAT;
    }
    return vitq_i_fail(VITQ_ERR_FORMAT, "%s: decompressed data runs past the %zu bytes %s", z->name, z->limit,
                       z->why ? z->why : "expected");
}

/* Make room for `extra` more output bytes, doubling the buffer (the allocator has no realloc), but
 * never beyond the limit and its slack. */
static vitq_status out_reserve(inflater *z, size_t extra) {
    if (z->cap - z->len >= extra) return VITQ_OK;
    size_t need, ncap = z->cap ? z->cap : 4096, most;
    if (!vitq_i_add_size(z->len, extra, &need)) return vitq_i_oom(z->name, SIZE_MAX);
    if (!vitq_i_add_size(z->limit, SLACK, &most)) most = SIZE_MAX;
    while (ncap < need) ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    if (ncap > most && most >= need) ncap = most;
    uint8_t *p = vitq_i_alloc(z->a, ncap);
    if (!p) return vitq_i_fail(VITQ_ERR_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes for decompressed data",
                               z->name, ncap);
    if (z->len) memcpy(p, z->out, z->len);
    vitq_i_free(z->a, z->out);
    z->out = p;
    z->cap = ncap;
    return VITQ_OK;
}

static vitq_status stored_block(inflater *z, bitreader *b) {
    br_take(b, b->cnt & 7); /* skip to the byte boundary */
    if (br_overrun(b)) return truncated(z, z->base + b->n);
    size_t p = br_consumed(b); /* whole bytes still in the buffer go back to the input */
    b->pos = p;
    b->buf = 0;
    b->cnt = 0;
    if (b->n - p < 4) return truncated(z, z->base + b->n);
    unsigned len = b->src[p] | (unsigned)b->src[p + 1] << 8;
    unsigned nlen = b->src[p + 2] | (unsigned)b->src[p + 3] << 8;
    if (len != (~nlen & 0xFFFFu))
        return vitq_i_fail(VITQ_ERR_CORRUPT_DATA, "%s: corrupt deflate data at byte %zu: stored block LEN %u "
                           "does not match NLEN %u", z->name, z->base + p, len, nlen);
    p += 4;
    if (b->n - p < len) return truncated(z, z->base + b->n);
    size_t keep = len;
    if (keep > z->limit - z->len) {
        vitq_status st = over_limit(z);
        if (!z->stopped) return st;
        keep = z->limit - z->len; /* peek: the part that fits */
    }
    vitq_status st = out_reserve(z, keep);
    if (st) return st;
    if (keep) memcpy(z->out + z->len, b->src + p, keep);
    z->len += keep;
    b->pos = p + len;
    return z->stopped ? VITQ_ERR_FORMAT : VITQ_OK;
}

static vitq_status build_error(const inflater *z, const bitreader *b, int r, const char *which) {
    return bad(z, b, "%s code lengths are %s", which, r == BUILD_OVER ? "over-subscribed" : "incomplete");
}

static vitq_status fixed_tables(inflater *z, const bitreader *b) {
    uint8_t lens[288 + 32];
    unsigned i = 0;
    for (; i < 144; i++) lens[i] = 8;
    for (; i < 256; i++) lens[i] = 9;
    for (; i < 280; i++) lens[i] = 7;
    for (; i < 288; i++) lens[i] = 8;
    for (; i < 288 + 32; i++) lens[i] = 5;
    /* Symbols 286-287 and distances 30-31 get codes but are rejected when they occur. */
    if (huff_build(z->tab->lit, LIT_CAP, LIT_BITS, lens, 288, 0) ||
        huff_build(z->tab->dist, DIST_CAP, DIST_BITS, lens + 288, 32, 0))
        return bad(z, b, "internal error building the fixed tables");
    return VITQ_OK;
}

static vitq_status dynamic_tables(inflater *z, bitreader *b) {
    uint8_t lens[286 + 30], cl_lens[19] = {0};
    br_refill(b);
    unsigned hlit = br_take(b, 5) + 257, hdist = br_take(b, 5) + 1, hclen = br_take(b, 4) + 4;
    if (hlit > 286 || hdist > 30) return bad(z, b, "too many length (%u) or distance (%u) codes", hlit, hdist);
    for (unsigned i = 0; i < hclen; i++) {
        br_refill(b);
        cl_lens[cl_order[i]] = (uint8_t)br_take(b, 3);
    }
    int r = huff_build(z->tab->cl, 1u << CL_BITS, CL_BITS, cl_lens, 19, 0);
    if (r) return build_error(z, b, r, "code-length");

    unsigned total = hlit + hdist;
    for (unsigned i = 0; i < total;) {
        br_refill(b);
        uint32_t e = huff_lookup(z->tab->cl, CL_BITS, b->buf);
        if ((e >> 24) != E_SYM) return br_short(b, 1) ? truncated(z, z->base + b->n) : bad(z, b, "invalid code-length code");
        br_take(b, (e >> 16) & 0xFF);
        unsigned sym = e & 0xFFFF, rep;
        uint8_t val = 0;
        if (sym < 16) {
            lens[i++] = (uint8_t)sym;
            continue;
        }
        if (sym == 16) {
            if (i == 0) return bad(z, b, "code length repeat with no previous length");
            val = lens[i - 1];
            rep = 3 + br_take(b, 2);
        } else if (sym == 17) {
            rep = 3 + br_take(b, 3);
        } else {
            rep = 11 + br_take(b, 7);
        }
        if (rep > total - i) return bad(z, b, "code length repeat runs past the %u lengths", total);
        memset(lens + i, val, rep);
        i += rep;
    }
    if (br_overrun(b)) return truncated(z, z->base + b->n);
    if (lens[256] == 0) return bad(z, b, "no code for end-of-block");
    if ((r = huff_build(z->tab->lit, LIT_CAP, LIT_BITS, lens, hlit, 1)))
        return build_error(z, b, r, "literal/length");
    if ((r = huff_build(z->tab->dist, DIST_CAP, DIST_BITS, lens + hlit, hdist, 1)))
        return build_error(z, b, r, "distance");
    return VITQ_OK;
}

/* Decode the symbols of one Huffman block up to its end-of-block code. */
static vitq_status huffman_block(inflater *z, bitreader *b) {
    const uint32_t *lit = z->tab->lit, *dist = z->tab->dist;
    for (;;) {
        if (b->cnt < 48) br_refill(b);
        if (z->cap - z->len < SLACK) { /* a match, plus slack for 8-byte copies */
            vitq_status st = out_reserve(z, SLACK);
            if (st) return st;
        }
        uint32_t e = huff_lookup(lit, LIT_BITS, b->buf);
        if ((e >> 24) != E_SYM) return br_short(b, 1) ? truncated(z, z->base + b->n) : bad(z, b, "invalid literal/length code");
        br_take(b, (e >> 16) & 0xFF);
        unsigned sym = e & 0xFFFF;
        if (sym < 256) {
            if (br_overrun(b)) return truncated(z, z->base + b->n);
            if (z->len == z->limit) return over_limit(z);
            z->out[z->len++] = (uint8_t)sym;
            continue;
        }
        if (sym == 256) break;
        if (sym > 285) return bad(z, b, "invalid literal/length symbol %u", sym);
        unsigned len = len_base[sym - 257] + br_take(b, len_extra[sym - 257]);
        e = huff_lookup(dist, DIST_BITS, b->buf);
        if ((e >> 24) != E_SYM) return br_short(b, 1) ? truncated(z, z->base + b->n) : bad(z, b, "invalid distance code");
        br_take(b, (e >> 16) & 0xFF);
        unsigned dsym = e & 0xFFFF;
        if (dsym > 29) return bad(z, b, "invalid distance symbol %u", dsym);
        size_t d = dist_base[dsym] + br_take(b, dist_extra[dsym]);
        if (br_overrun(b)) return truncated(z, z->base + b->n);
        if (d > z->len - z->stream_start)
            return bad(z, b, "distance %zu reaches before the start of the output (%zu bytes so far)", d,
                       z->len - z->stream_start);
        unsigned keep = len;
        if (len > z->limit - z->len) {
            vitq_status st = over_limit(z);
            if (!z->stopped) return st;
            keep = (unsigned)(z->limit - z->len); /* peek: copy the match whole into the slack, keep what fits */
        }
        uint8_t *dst = z->out + z->len;
        const uint8_t *from = dst - d;
        if (d >= 8) { /* chunks never read bytes written by the same chunk; overshoot lands in slack */
            for (unsigned i = 0; i < len; i += 8) memcpy(dst + i, from + i, 8);
        } else if (d == 1) { /* runs of one byte value, common in images */
            memset(dst, from[0], len);
        } else {
            for (unsigned i = 0; i < len; i++) dst[i] = from[i]; /* overlapping: repeats a pattern */
        }
        z->len += keep;
        if (z->stopped) return VITQ_ERR_FORMAT;
    }
    if (br_overrun(b)) return truncated(z, z->base + b->n);
    return VITQ_OK;
}

/* Decode one deflate stream from src[0..n) appending to z->out; *used = bytes up to the boundary
 * after the final block. */
static vitq_status inflate_stream(inflater *z, const uint8_t *src, size_t n, size_t *used) {
    bitreader b = {src, n, 0, 0, 0};
    z->stream_start = z->len;
    unsigned final = 0;
    while (!final) {
        br_refill(&b);
        final = br_take(&b, 1);
        unsigned type = br_take(&b, 2);
        if (br_overrun(&b)) return truncated(z, z->base + n);
        vitq_status st;
        if (type == 0) {
            st = stored_block(z, &b);
        } else if (type == 1) {
            st = fixed_tables(z, &b);
            if (!st) st = huffman_block(z, &b);
        } else if (type == 2) {
            st = dynamic_tables(z, &b);
            if (!st) st = huffman_block(z, &b);
        } else {
            st = bad(z, &b, "invalid block type 3");
        }
        if (st) return st;
    }
    br_take(&b, b.cnt & 7);
    *used = br_consumed(&b);
    return VITQ_OK;
}

static vitq_status inflater_init(inflater *z, const vitq_allocator *a, const char *name, size_t guess) {
    memset(z, 0, sizeof *z);
    z->a = a;
    z->name = name ? name : "(buffer)";
    z->limit = SIZE_MAX;
    z->tab = vitq_i_alloc(a, sizeof *z->tab);
    if (!z->tab) return vitq_i_oom("inflate tables", sizeof *z->tab);
    crc_slices_init(z->tab->crc);
    vitq_status st = out_reserve(z, guess ? guess : 1);
    if (st) vitq_i_free(a, z->tab);
    return st;
}

/* Deflate expands at most about 1032:1, so a size claim beyond that is not worth allocating. */
static size_t size_guess(size_t claimed, size_t n) {
    size_t limit;
    if (!vitq_i_mul_size(n, 1032, &limit)) limit = SIZE_MAX;
    return claimed < limit ? claimed : limit;
}

vitq_status vitq_i_inflate_raw(const vitq_allocator *a, const uint8_t *src, size_t n, const char *name,
                               uint8_t **out, size_t *out_n, size_t *consumed) {
    if (out) *out = NULL;
    if (out_n) *out_n = 0;
    if (!a || (!src && n) || !out || !out_n)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "inflate: NULL argument");
    size_t four;
    inflater z;
    vitq_status st = inflater_init(&z, a, name, size_guess(vitq_i_mul_size(n, 4, &four) ? four : SIZE_MAX, n));
    if (st) return st;
    size_t used = 0;
    st = inflate_stream(&z, src, n, &used);
    vitq_i_free(a, z.tab);
    if (st) {
        vitq_i_free(a, z.out);
        return st;
    }
    *out = z.out;
    *out_n = z.len;
    if (consumed) *consumed = used;
    return VITQ_OK;
}

/* ---- gzip -------------------------------------------------------------------------------------- */

int vitq_i_is_gzip(const uint8_t *src, size_t n) { return src && n >= 2 && src[0] == 0x1f && src[1] == 0x8b; }

static uint32_t le32(const uint8_t *p) {
    return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#define FHCRC 0x02u
#define FEXTRA 0x04u
#define FNAME 0x08u
#define FCOMMENT 0x10u

/* Parse the member header at src[0..n) (src at offset `at` of the file); *hlen = its length. */
static vitq_status gzip_header(const uint8_t *src, size_t n, size_t at, const char *name, size_t *hlen) {
    if ((n >= 1 && src[0] != 0x1f) || (n >= 2 && src[1] != 0x8b))
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: not gzip data: bad magic %02x %02x at byte %zu", name, src[0],
                           n >= 2 ? src[1] : 0, at);
    if (n < 10) return vitq_i_fail(VITQ_ERR_TRUNCATED, "%s: gzip header at byte %zu is cut short", name, at);
    if (src[2] != 8)
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: gzip compression method %u at byte %zu (only 8, deflate)", name,
                           src[2], at + 2);
    unsigned flg = src[3];
    if (flg & 0xE0)
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: gzip header at byte %zu sets reserved flag bits 0x%02x", name,
                           at, flg & 0xE0);
    size_t p = 10;
    if (flg & FEXTRA) {
        if (n - p < 2) goto cut;
        size_t xlen = src[p] | (size_t)src[p + 1] << 8;
        p += 2;
        if (n - p < xlen) goto cut;
        p += xlen;
    }
    for (unsigned f = FNAME; f <= FCOMMENT; f <<= 1) { /* zero-terminated file name, then comment */
        if (!(flg & f)) continue;
        const uint8_t *z = memchr(src + p, 0, n - p);
        if (!z) goto cut;
        p = (size_t)(z - src) + 1;
    }
    if (flg & FHCRC) {
        if (n - p < 2) goto cut;
        unsigned want = src[p] | (unsigned)src[p + 1] << 8, got = vitq_i_crc32(0, src, p) & 0xFFFFu;
        if (want != got)
            return vitq_i_fail(VITQ_ERR_CORRUPT_DATA, "%s: gzip header CRC16 %04x at byte %zu, header gives %04x",
                               name, want, at + p, got);
        p += 2;
    }
    *hlen = p;
    return VITQ_OK;
cut:
    return vitq_i_fail(VITQ_ERR_TRUNCATED, "%s: gzip header at byte %zu is cut short", name, at);
}

static int all_zero(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

static vitq_status gzip_members(inflater *z, const uint8_t *src, size_t n) {
    size_t p = 0;
    do {
        size_t hlen = 0;
        vitq_status st = gzip_header(src + p, n - p, p, z->name, &hlen);
        if (st) return st;
        size_t start = z->len, used = 0;
        z->base = p + hlen;
        if ((st = inflate_stream(z, src + p + hlen, n - p - hlen, &used))) return z->stopped ? VITQ_OK : st;
        p += hlen + used;
        if (n - p < 8)
            return vitq_i_fail(VITQ_ERR_TRUNCATED, "%s: gzip trailer at byte %zu is cut short", z->name, p);
        uint32_t want = le32(src + p), got = crc_sliced(z->tab->crc, 0, z->out + start, z->len - start);
        if (want != got)
            return vitq_i_fail(VITQ_ERR_CORRUPT_DATA, "%s: CRC32 mismatch at byte %zu: trailer says %08x, data "
                               "gives %08x", z->name, p, (unsigned)want, (unsigned)got);
        uint32_t isize = le32(src + p + 4);
        if (isize != (uint32_t)(z->len - start))
            return vitq_i_fail(VITQ_ERR_CORRUPT_DATA, "%s: ISIZE mismatch at byte %zu: trailer says %u, data has "
                               "%zu bytes", z->name, p + 4, (unsigned)isize, z->len - start);
        p += 8;
        /* Zero padding after a member is tolerated (tape and block-device habits, as gzip does). */
    } while (p < n && !all_zero(src + p, n - p));
    return VITQ_OK;
}

/* Decompress with an output limit; `peek` makes reaching it a success. */
static vitq_status gzip_run(const vitq_allocator *a, const uint8_t *src, size_t n, const char *name, size_t limit,
                            const char *why, int peek, uint8_t **out, size_t *out_n) {
    if (out) *out = NULL;
    if (out_n) *out_n = 0;
    if (!a || (!src && n) || !out || !out_n)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "gzip: NULL argument");
    if (!name) name = "(buffer)";
    if (n == 0) return vitq_i_fail(VITQ_ERR_TRUNCATED, "%s: empty file, gzip data expected", name);
    /* The last member's ISIZE is the whole size for the usual single member: a first guess only. */
    size_t guess = n >= 18 ? size_guess(le32(src + n - 4), n) : 0;
    if (guess > limit) guess = limit;
    inflater z;
    vitq_status st = inflater_init(&z, a, name, guess);
    if (st) return st;
    z.limit = limit;
    z.why = why;
    z.peek = peek;
    st = gzip_members(&z, src, n);
    vitq_i_free(a, z.tab);
    if (st) {
        vitq_i_free(a, z.out);
        return st;
    }
    *out = z.out;
    *out_n = z.len;
    return VITQ_OK;
}

vitq_status vitq_i_gzip_decompress(const vitq_allocator *a, const uint8_t *src, size_t n, const char *name,
                                   uint8_t **out, size_t *out_n) {
    return gzip_run(a, src, n, name, SIZE_MAX, NULL, 0, out, out_n);
}

vitq_status vitq_i_gzip_decompress_limit(const vitq_allocator *a, const uint8_t *src, size_t n, const char *name,
                                         size_t limit, const char *why, uint8_t **out, size_t *out_n) {
    return gzip_run(a, src, n, name, limit, why, 0, out, out_n);
}

vitq_status vitq_i_gzip_peek(const vitq_allocator *a, const uint8_t *src, size_t n, const char *name, size_t want,
                             uint8_t **out, size_t *out_n) {
    return gzip_run(a, src, n, name, want, NULL, 1, out, out_n);
}
