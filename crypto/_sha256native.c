/* Batched SHA-256 for the block-commit path: many digests per call, with the GIL released.
 *
 * The ledger hashes every transaction of a block twice (its tx id and its Merkle leaf content)
 * and then builds the block's RFC 6962 Merkle tree: about 2,000 SHA-256 computations per block
 * of 500 transactions. Through hashlib each costs a Python call, a hash object and a bytes object,
 * which is as much time again as the hashing itself. This module takes whole lists instead:
 *
 *   digest_ranges(tag, data, bounds)   sha256(tag || data[s:e]) for each (s, e) in bounds
 *   root_of_ranges(tag, data, bounds, crc)
 *                                      the same digests and their RFC 6962 Merkle root (and, if
 *                                      crc, the CRC-32 of all of data), computed on a thread of
 *                                      its own; .result() and .crc32() wait for them
 *   merkle_root(leaves)                RFC 6962 MTH over leaf data
 *   root_of_leaf_hashes(hashes)        the same from SHA-256(0x00 || leaf) up
 *   sha256(data)                       one digest (for tests)
 *   implementation()                   "sha-ni" or "portable"
 *
 * The compression function is FIPS 180-4 section 6.2.2, in two versions: portable C, and the
 * x86 SHA extensions (SHA256RNDS2, SHA256MSG1, SHA256MSG2; Intel SDM vol. 2, and Intel's white
 * paper "Intel SHA Extensions", 2013), chosen once at import by CPUID. The CRC-32 is the one of
 * zlib and ISO-HDLC (reflected polynomial 0xEDB88320): folded 64 bytes at a time with carry-less
 * multiplication (PCLMULQDQ) where the CPU has it, as in Intel's white paper "Fast CRC
 * Computation for Generic Polynomials Using PCLMULQDQ Instruction" (Gopal et al., 2009), whose
 * folding and Barrett-reduction constants for this polynomial are used below; else (and for the
 * tail) table-driven eight bytes at a time. Python (crypto.hashing)
 * uses this module only where it reports "sha-ni"; elsewhere hashlib stays faster.
 *
 * This module must never return a digest computed over anything but exactly the bytes asked
 * for: bounds are checked before any hashing, and a bad one raises ValueError.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#define HAVE_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

/* FIPS 180-4 section 4.2.2 */
static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* FIPS 180-4 section 5.3.3 */
static const uint32_t H0[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

typedef void (*blocks_fn)(uint32_t state[8], const uint8_t *data, size_t nblocks);

/* ---- portable compression (FIPS 180-4 section 6.2.2) ---------------------------------------- */

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static uint32_t load_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static void store_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void blocks_portable(uint32_t state[8], const uint8_t *data, size_t nblocks) {
    uint32_t w[64];
    while (nblocks--) {
        for (int t = 0; t < 16; t++) w[t] = load_be32(data + 4 * t);
        for (int t = 16; t < 64; t++) {
            uint32_t s0 = ROTR(w[t - 15], 7) ^ ROTR(w[t - 15], 18) ^ (w[t - 15] >> 3);
            uint32_t s1 = ROTR(w[t - 2], 17) ^ ROTR(w[t - 2], 19) ^ (w[t - 2] >> 10);
            w[t] = w[t - 16] + s0 + w[t - 7] + s1;
        }
        uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
        uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
        for (int t = 0; t < 64; t++) {
            uint32_t t1 = h + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + ((e & f) ^ (~e & g)) + K256[t] + w[t];
            uint32_t t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            h = g;
            g = f;
            f = e;
            e = d + t1;
            d = c;
            c = b;
            b = a;
            a = t1 + t2;
        }
        state[0] += a;
        state[1] += b;
        state[2] += c;
        state[3] += d;
        state[4] += e;
        state[5] += f;
        state[6] += g;
        state[7] += h;
        data += 64;
    }
}

/* ---- x86 SHA extensions ---------------------------------------------------------------------- */

#ifdef HAVE_X86
/* The state lives in two registers as the instructions want it: ABEF and CDGH. Each group of
 * four rounds adds K[4i..4i+3] to the message words W[4i..4i+3] and runs SHA256RNDS2 twice (two
 * rounds each). From group 4 on, W[t] = s1(W[t-2]) + W[t-7] + s0(W[t-15]) + W[t-16] four words at a
 * time: SHA256MSG1 gives W[t-16] + s0(W[t-15]), PALIGNR picks W[t-7], SHA256MSG2 adds s1(W[t-2]). */
__attribute__((target("sha,sse4.1,ssse3"))) static void blocks_shani(uint32_t state[8], const uint8_t *data,
                                                                      size_t nblocks) {
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i tmp = _mm_loadu_si128((const __m128i *)&state[0]);     /* DCBA */
    __m128i state1 = _mm_loadu_si128((const __m128i *)&state[4]);  /* HGFE */
    tmp = _mm_shuffle_epi32(tmp, 0xB1);                            /* CDAB */
    state1 = _mm_shuffle_epi32(state1, 0x1B);                      /* EFGH */
    __m128i state0 = _mm_alignr_epi8(tmp, state1, 8);              /* ABEF */
    state1 = _mm_blend_epi16(state1, tmp, 0xF0);                   /* CDGH */

    while (nblocks--) {
        const __m128i abef = state0, cdgh = state1;
        __m128i w[4];
        for (int i = 0; i < 16; i++) {
            __m128i m;
            if (i < 4) {
                m = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16 * i)), bswap);
            } else {
                __m128i w7 = _mm_alignr_epi8(w[(i - 1) & 3], w[(i - 2) & 3], 4);
                m = _mm_add_epi32(_mm_sha256msg1_epu32(w[i & 3], w[(i - 3) & 3]), w7);
                m = _mm_sha256msg2_epu32(m, w[(i - 1) & 3]);
            }
            w[i & 3] = m;
            __m128i wk = _mm_add_epi32(m, _mm_loadu_si128((const __m128i *)&K256[4 * i]));
            state1 = _mm_sha256rnds2_epu32(state1, state0, wk);
            wk = _mm_shuffle_epi32(wk, 0x0E);
            state0 = _mm_sha256rnds2_epu32(state0, state1, wk);
        }
        state0 = _mm_add_epi32(state0, abef);
        state1 = _mm_add_epi32(state1, cdgh);
        data += 64;
    }

    tmp = _mm_shuffle_epi32(state0, 0x1B);         /* FEBA */
    state1 = _mm_shuffle_epi32(state1, 0xB1);      /* DCHG */
    state0 = _mm_blend_epi16(tmp, state1, 0xF0);   /* DCBA */
    state1 = _mm_alignr_epi8(state1, tmp, 8);      /* HGFE */
    _mm_storeu_si128((__m128i *)&state[0], state0);
    _mm_storeu_si128((__m128i *)&state[4], state1);
}

static int cpu_has_shani(void) {
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int ssse3 = (c >> 9) & 1, sse41 = (c >> 19) & 1;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return ssse3 && sse41 && ((b >> 29) & 1);
}
#endif

static blocks_fn compress = blocks_portable;

/* ---- CRC-32 (ISO-HDLC, as zlib.crc32), slicing by 8 ---------------------------------------------- */

static uint32_t crc_table[8][256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++) crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

/* The table-driven update of the CRC register (pre- and post-inversion left to the caller). */
static uint32_t crc_update_table(uint32_t crc, const uint8_t *p, size_t n) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        v ^= crc;
        crc = crc_table[7][v & 0xff] ^ crc_table[6][(v >> 8) & 0xff] ^ crc_table[5][(v >> 16) & 0xff] ^
              crc_table[4][(v >> 24) & 0xff] ^ crc_table[3][(v >> 32) & 0xff] ^ crc_table[2][(v >> 40) & 0xff] ^
              crc_table[1][(v >> 48) & 0xff] ^ crc_table[0][v >> 56];
        p += 8;
        n -= 8;
    }
#endif
    while (n--) crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

#ifdef HAVE_X86
/* The register after n bytes (n >= 64, a multiple of 16). Four 128-bit lanes are folded forward
 * 64 bytes at a time (constants x^(4*128+32) and x^(4*128-32) mod P, bit-reflected), folded into
 * one lane, then 128 -> 64 -> 32 bits and a Barrett reduction. */
__attribute__((target("pclmul,sse4.1"))) static uint32_t crc_update_clmul(uint32_t crc, const uint8_t *p, size_t n) {
    const __m128i k1k2 = _mm_set_epi64x(0x01c6e41596LL, 0x0154442bd4LL);
    const __m128i k3k4 = _mm_set_epi64x(0x00ccaa009eLL, 0x01751997d0LL);
    const __m128i k5 = _mm_set_epi64x(0, 0x0163cd6124LL);
    const __m128i poly = _mm_set_epi64x(0x01f7011641LL, 0x01db710641LL); /* mu, P' */
    const __m128i mask32 = _mm_setr_epi32(-1, 0, -1, 0);
    __m128i x1 = _mm_loadu_si128((const __m128i *)(p + 0));
    __m128i x2 = _mm_loadu_si128((const __m128i *)(p + 16));
    __m128i x3 = _mm_loadu_si128((const __m128i *)(p + 32));
    __m128i x4 = _mm_loadu_si128((const __m128i *)(p + 48));
    x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128((int)crc));
    p += 64;
    n -= 64;
#define FOLD(x, k, next)                                                                        \
    do {                                                                                        \
        __m128i lo_ = _mm_clmulepi64_si128((x), (k), 0x00);                                     \
        (x) = _mm_clmulepi64_si128((x), (k), 0x11);                                             \
        (x) = _mm_xor_si128(_mm_xor_si128((x), lo_), (next));                                   \
    } while (0)
    while (n >= 64) {
        FOLD(x1, k1k2, _mm_loadu_si128((const __m128i *)(p + 0)));
        FOLD(x2, k1k2, _mm_loadu_si128((const __m128i *)(p + 16)));
        FOLD(x3, k1k2, _mm_loadu_si128((const __m128i *)(p + 32)));
        FOLD(x4, k1k2, _mm_loadu_si128((const __m128i *)(p + 48)));
        p += 64;
        n -= 64;
    }
    FOLD(x1, k3k4, x2);
    FOLD(x1, k3k4, x3);
    FOLD(x1, k3k4, x4);
    while (n >= 16) {
        FOLD(x1, k3k4, _mm_loadu_si128((const __m128i *)p));
        p += 16;
        n -= 16;
    }
#undef FOLD
    /* 128 -> 64 bits */
    x2 = _mm_clmulepi64_si128(x1, k3k4, 0x10);
    x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), x2);
    /* 64 -> 32 bits */
    x2 = _mm_srli_si128(x1, 4);
    x1 = _mm_clmulepi64_si128(_mm_and_si128(x1, mask32), k5, 0x00);
    x1 = _mm_xor_si128(x1, x2);
    /* Barrett reduction */
    x2 = _mm_clmulepi64_si128(_mm_and_si128(x1, mask32), poly, 0x10);
    x2 = _mm_clmulepi64_si128(_mm_and_si128(x2, mask32), poly, 0x00);
    x1 = _mm_xor_si128(x1, x2);
    return (uint32_t)_mm_extract_epi32(x1, 1);
}

static int cpu_has_clmul(void) {
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return ((c >> 1) & 1) && ((c >> 19) & 1); /* PCLMULQDQ, SSE4.1 */
}
#endif

static int use_clmul = 0;

static uint32_t crc32_of(const uint8_t *p, size_t n) {
    uint32_t crc = 0xFFFFFFFFu;
#ifdef HAVE_X86
    if (use_clmul && n >= 64) {
        size_t bulk = n & ~(size_t)15;
        crc = crc_update_clmul(crc, p, bulk);
        p += bulk;
        n -= bulk;
    }
#endif
    return ~crc_update_table(crc, p, n);
}

/* ---- streaming context ------------------------------------------------------------------------ */

typedef struct {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t used;
} ctx_t;

static void ctx_init(ctx_t *c) {
    memcpy(c->h, H0, sizeof H0);
    c->len = 0;
    c->used = 0;
}

static void ctx_update(ctx_t *c, const uint8_t *p, size_t n) {
    c->len += n;
    if (c->used) {
        size_t take = 64 - c->used < n ? 64 - c->used : n;
        memcpy(c->buf + c->used, p, take);
        c->used += take;
        p += take;
        n -= take;
        if (c->used < 64) return;
        compress(c->h, c->buf, 1);
        c->used = 0;
    }
    if (n >= 64) {
        compress(c->h, p, n / 64);
        p += n & ~(size_t)63;
        n &= 63;
    }
    memcpy(c->buf, p, n);
    c->used = n;
}

static void ctx_final(ctx_t *c, uint8_t out[32]) {
    uint64_t bits = c->len * 8;
    c->buf[c->used++] = 0x80;
    if (c->used > 56) {
        memset(c->buf + c->used, 0, 64 - c->used);
        compress(c->h, c->buf, 1);
        c->used = 0;
    }
    memset(c->buf + c->used, 0, 56 - c->used);
    for (int i = 0; i < 8; i++) c->buf[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    compress(c->h, c->buf, 1);
    for (int i = 0; i < 8; i++) store_be32(out + 4 * i, c->h[i]);
}

/* SHA-256(0x01 || left || right): two blocks, the second one fixed-layout. */
static void node_hash(const uint8_t left[32], const uint8_t right[32], uint8_t out[32]) {
    uint8_t blk[128];
    uint32_t h[8];
    blk[0] = 0x01;
    memcpy(blk + 1, left, 32);
    memcpy(blk + 33, right, 31);
    blk[64] = right[31];
    blk[65] = 0x80;
    memset(blk + 66, 0, 128 - 66 - 2);
    blk[126] = (65 * 8) >> 8; /* message length in bits: 520 */
    blk[127] = (65 * 8) & 0xff;
    memcpy(h, H0, sizeof H0);
    compress(h, blk, 2);
    for (int i = 0; i < 8; i++) store_be32(out + 4 * i, h[i]);
}

/* SHA-256(0x00 || leaf): an RFC 6962 leaf hash. */
static void leaf_hash(const uint8_t *leaf, size_t n, uint8_t out[32]) {
    static const uint8_t zero = 0x00;
    ctx_t c;
    ctx_init(&c);
    ctx_update(&c, &zero, 1);
    ctx_update(&c, leaf, n);
    ctx_final(&c, out);
}

/* RFC 6962 section 2.1 over n leaf hashes in buf (32 bytes each), in place: pairing adjacent nodes
 * and promoting an odd last node builds exactly the "largest power of two" split. */
static void root_in_place(uint8_t *buf, size_t n) {
    while (n > 1) {
        size_t half = n / 2;
        for (size_t j = 0; j < half; j++) node_hash(buf + 64 * j, buf + 64 * j + 32, buf + 32 * j);
        if (n & 1) memmove(buf + 32 * half, buf + 32 * (n - 1), 32);
        n = half + (n & 1);
    }
}

/* ---- Python interface ----------------------------------------------------------------------- */

static PyObject *digests_to_list(const uint8_t *out, Py_ssize_t n) {
    PyObject *list = PyList_New(n);
    if (!list) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *b = PyBytes_FromStringAndSize((const char *)out + 32 * i, 32);
        if (!b) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, b);
    }
    return list;
}

static PyObject *py_sha256(PyObject *self, PyObject *arg) {
    Py_buffer v;
    uint8_t out[32];
    ctx_t c;
    if (PyObject_GetBuffer(arg, &v, PyBUF_SIMPLE) < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS
    ctx_init(&c);
    ctx_update(&c, v.buf, (size_t)v.len);
    ctx_final(&c, out);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&v);
    return PyBytes_FromStringAndSize((const char *)out, 32);
}

/* Read the flat list of (start, end) pairs into a fresh array and check every pair lies within
 * `size` bytes. Returns the number of pairs, or -1 with an exception set. */
static Py_ssize_t parse_bounds(PyObject *obj, Py_ssize_t size, Py_ssize_t **out) {
    PyObject *seq = PySequence_Fast(obj, "bounds must be a sequence of ints");
    if (!seq) return -1;
    Py_ssize_t m = PySequence_Fast_GET_SIZE(seq), n = m / 2;
    Py_ssize_t *b = NULL;
    if (m & 1) {
        PyErr_SetString(PyExc_ValueError, "bounds must hold (start, end) pairs");
        goto fail;
    }
    if ((size_t)n > PY_SSIZE_T_MAX / 64) { /* callers allocate 64 bytes per pair */
        PyErr_NoMemory();
        goto fail;
    }
    b = PyMem_RawMalloc(sizeof(Py_ssize_t) * (size_t)(m ? m : 1));
    if (!b) {
        PyErr_NoMemory();
        goto fail;
    }
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < m; i++) {
        if (!PyLong_CheckExact(items[i])) {
            PyErr_Format(PyExc_TypeError, "bounds must be ints, not %.100s", Py_TYPE(items[i])->tp_name);
            goto fail;
        }
        b[i] = PyLong_AsSsize_t(items[i]);
        if (b[i] == -1 && PyErr_Occurred()) { /* too large for any buffer: out of range */
            PyErr_Format(PyExc_ValueError, "bound %zd is not within %zd bytes", i, size);
            goto fail;
        }
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (b[2 * i] < 0 || b[2 * i] > b[2 * i + 1] || b[2 * i + 1] > size) {
            PyErr_Format(PyExc_ValueError, "range %zd [%zd, %zd) is not within %zd bytes", i, b[2 * i],
                         b[2 * i + 1], size);
            goto fail;
        }
    }
    Py_DECREF(seq);
    *out = b;
    return n;
fail:
    PyMem_RawFree(b);
    Py_DECREF(seq);
    return -1;
}

/* sha256(tag || data[b[2i]:b[2i+1]]) into out + 32i, for i < n. Needs no GIL. */
static void hash_ranges(const uint8_t *tag, size_t taglen, const uint8_t *data, const Py_ssize_t *b, Py_ssize_t n,
                        uint8_t *out) {
    ctx_t base, c;
    ctx_init(&base);
    ctx_update(&base, tag, taglen);
    for (Py_ssize_t i = 0; i < n; i++) {
        c = base;
        ctx_update(&c, data + b[2 * i], (size_t)(b[2 * i + 1] - b[2 * i]));
        ctx_final(&c, out + 32 * i);
    }
}

/* The RFC 6962 root over leaves that are themselves the n 32-byte digests in `hashes`:
 * SHA-256(0x00 || digest) for each, then the tree. `work` has room for n digests. */
static void root_of_digests(const uint8_t *hashes, size_t n, uint8_t *work, uint8_t root[32]) {
    if (n == 0) {
        ctx_t c;
        ctx_init(&c);
        ctx_final(&c, root);
        return;
    }
    for (size_t i = 0; i < n; i++) leaf_hash(hashes + 32 * i, 32, work + 32 * i);
    root_in_place(work, n);
    memcpy(root, work, 32);
}

PyDoc_STRVAR(digest_ranges_doc,
             "digest_ranges(tag, data, bounds) -> list[bytes]\n\n"
             "sha256(tag || data[s:e]) for each pair (s, e) of the flat list bounds = [s0, e0, s1, e1, ...].\n"
             "ValueError unless 0 <= s <= e <= len(data) for every pair.");

static PyObject *py_digest_ranges(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "digest_ranges(tag, data, bounds) takes 3 arguments");
        return NULL;
    }
    Py_buffer tag, data;
    PyObject *result = NULL;
    Py_ssize_t *b = NULL;
    uint8_t *out = NULL;
    if (PyObject_GetBuffer(args[0], &tag, PyBUF_SIMPLE) < 0) return NULL;
    if (PyObject_GetBuffer(args[1], &data, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&tag);
        return NULL;
    }
    Py_ssize_t n = parse_bounds(args[2], data.len, &b);
    if (n < 0) goto done;
    out = PyMem_RawMalloc(32 * (size_t)(n ? n : 1));
    if (!out) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    hash_ranges(tag.buf, (size_t)tag.len, data.buf, b, n, out);
    Py_END_ALLOW_THREADS
    result = digests_to_list(out, n);
done:
    PyMem_RawFree(b);
    PyMem_RawFree(out);
    PyBuffer_Release(&data);
    PyBuffer_Release(&tag);
    return result;
}

/* ---- RootJob: digests and their Merkle root on a thread of their own --------------------------- */

/* The thread touches only memory the job owns (tag copy, bounds, output) and the data buffer,
 * which the job keeps exported until it is freed; it never calls into Python. */
typedef struct {
    PyObject_HEAD
    Py_buffer data;
    uint8_t *tag;
    size_t taglen;
    Py_ssize_t *bounds;
    Py_ssize_t n;
    uint8_t *hashes; /* n digests, then room for n more (the tree's work space) */
    uint8_t root[32];
    int want_crc;
    uint32_t crc;
    pthread_t thread;
    pid_t pid;   /* the process that started the thread: a forked child has no such thread */
    pthread_mutex_t join_lock; /* serialises pthread_join; guards running */
    int running; /* a thread was started and not yet joined (under join_lock) */
    int done;    /* joined and results visible; read/written only with the GIL held */
} RootJob;

static void *root_job_run(void *arg) {
    RootJob *job = arg;
    hash_ranges(job->tag, job->taglen, job->data.buf, job->bounds, job->n, job->hashes);
    root_of_digests(job->hashes, (size_t)job->n, job->hashes + 32 * job->n, job->root);
    if (job->want_crc) job->crc = crc32_of(job->data.buf, (size_t)job->data.len);
    return NULL;
}

static void root_job_join(RootJob *job) { /* GIL need not be held */
    pthread_mutex_lock(&job->join_lock);
    if (job->running) {
        pthread_join(job->thread, NULL);
        job->running = 0;
    }
    pthread_mutex_unlock(&job->join_lock);
}

static void root_job_dealloc(RootJob *job) {
    if (job->pid == getpid()) { /* a forked child has no thread to join, and may inherit a held lock */
        if (!job->done) { /* nothing else can reach the job now: let other threads run meanwhile */
            Py_BEGIN_ALLOW_THREADS
            root_job_join(job);
            Py_END_ALLOW_THREADS
        }
        pthread_mutex_destroy(&job->join_lock);
    }
    PyBuffer_Release(&job->data);
    PyMem_RawFree(job->tag);
    PyMem_RawFree(job->bounds);
    PyMem_RawFree(job->hashes);
    Py_TYPE(job)->tp_free((PyObject *)job);
}

/* Wait for the thread (GIL released); -1 with an exception in a forked child. */
static int root_job_wait(RootJob *job) {
    if (job->done) return 0;
    if (job->pid != getpid()) {
        PyErr_SetString(PyExc_RuntimeError, "this RootJob's thread ran in the parent process (fork)");
        return -1;
    }
    Py_BEGIN_ALLOW_THREADS
    root_job_join(job);
    Py_END_ALLOW_THREADS
    job->done = 1;
    return 0;
}

static PyObject *root_job_crc32(RootJob *job, PyObject *unused) {
    if (!job->want_crc) {
        PyErr_SetString(PyExc_ValueError, "this job was started without crc");
        return NULL;
    }
    if (root_job_wait(job) < 0) return NULL;
    return PyLong_FromUnsignedLong(job->crc);
}

static PyObject *root_job_root(RootJob *job, PyObject *unused) {
    if (root_job_wait(job) < 0) return NULL;
    return PyBytes_FromStringAndSize((const char *)job->root, 32);
}

static PyObject *root_job_result(RootJob *job, PyObject *unused) {
    if (root_job_wait(job) < 0) return NULL;
    PyObject *hashes = digests_to_list(job->hashes, job->n);
    if (!hashes) return NULL;
    PyObject *root = PyBytes_FromStringAndSize((const char *)job->root, 32);
    if (!root) {
        Py_DECREF(hashes);
        return NULL;
    }
    PyObject *out = PyTuple_Pack(2, root, hashes);
    Py_DECREF(root);
    Py_DECREF(hashes);
    return out;
}

static PyMethodDef root_job_methods[] = {
    {"result", (PyCFunction)root_job_result, METH_NOARGS,
     "result() -> (root, digests): wait for the thread (GIL released) and return its work"},
    {"root", (PyCFunction)root_job_root, METH_NOARGS, "root() -> bytes: the Merkle root alone, waiting for it"},
    {"crc32", (PyCFunction)root_job_crc32, METH_NOARGS,
     "crc32() -> int: the CRC-32 (zlib's) of all of data, for a job started with crc true"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject RootJobType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "crypto._sha256native.RootJob",
    .tp_basicsize = sizeof(RootJob),
    .tp_dealloc = (destructor)root_job_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Digests of ranges of a buffer and their RFC 6962 Merkle root, being computed.",
    .tp_methods = root_job_methods,
};

PyDoc_STRVAR(root_of_ranges_doc,
             "root_of_ranges(tag, data, bounds[, crc]) -> RootJob   (positional arguments)\n\n"
             "Start computing, on a thread of its own, d_i = sha256(tag || data[s_i:e_i]) for each pair of\n"
             "bounds and the RFC 6962 Merkle root over the leaves d_0, d_1, ...; job.result() returns\n"
             "(root, [d_0, d_1, ...]); with crc true, job.crc32() the CRC-32 of data (as zlib.crc32).\n"
             "data must be read-only (the thread reads it after this call returns). Bounds are checked\n"
             "here (ValueError, TypeError), before the thread starts. Any number of threads may wait.");

static PyObject *py_root_of_ranges(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 && nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "root_of_ranges(tag, data, bounds[, crc]) takes 3 or 4 positional arguments");
        return NULL;
    }
    int want_crc = nargs == 4 ? PyObject_IsTrue(args[3]) : 0;
    if (want_crc < 0) return NULL;
    RootJob *job = PyObject_New(RootJob, &RootJobType);
    if (!job) return NULL;
    job->data.obj = NULL;
    job->tag = NULL;
    job->bounds = NULL;
    job->hashes = NULL;
    job->running = 0;
    job->done = 1; /* nothing to join until a thread is started */
    job->pid = getpid();
    pthread_mutex_init(&job->join_lock, NULL);
    job->n = 0;
    job->want_crc = want_crc;
    job->crc = 0;
    Py_buffer tag;
    if (PyObject_GetBuffer(args[0], &tag, PyBUF_SIMPLE) < 0) goto fail;
    job->taglen = (size_t)tag.len;
    job->tag = PyMem_RawMalloc(job->taglen ? job->taglen : 1);
    if (job->tag) memcpy(job->tag, tag.buf, job->taglen);
    PyBuffer_Release(&tag);
    if (!job->tag) {
        PyErr_NoMemory();
        goto fail;
    }
    if (PyObject_GetBuffer(args[1], &job->data, PyBUF_SIMPLE) < 0) {
        job->data.obj = NULL;
        goto fail;
    }
    if (!job->data.readonly) { /* the thread reads it after this call returns: it must not change */
        PyErr_SetString(PyExc_TypeError, "root_of_ranges needs read-only data (bytes), not a writable buffer");
        goto fail;
    }
    job->n = parse_bounds(args[2], job->data.len, &job->bounds);
    if (job->n < 0) {
        job->n = 0;
        goto fail;
    }
    job->hashes = PyMem_RawMalloc(64 * (size_t)(job->n ? job->n : 1));
    if (!job->hashes) {
        PyErr_NoMemory();
        goto fail;
    }
    pthread_attr_t attr;
    int started = 0;
    if (pthread_attr_init(&attr) == 0) {
        pthread_attr_setstacksize(&attr, 256 * 1024); /* a few KB are used; the default is 8 MB */
        started = pthread_create(&job->thread, &attr, root_job_run, job) == 0;
        pthread_attr_destroy(&attr);
    }
    if (started) {
        job->running = 1;
        job->done = 0;
    } else { /* no thread to be had: do the work here */
        Py_BEGIN_ALLOW_THREADS
        root_job_run(job);
        Py_END_ALLOW_THREADS
    }
    return (PyObject *)job;
fail:
    Py_DECREF(job);
    return NULL;
}
/* Copy n items of a sequence into a fresh buffer of leaf hashes: each item hashed as a leaf
 * (SHA-256(0x00 || item)) when `hash_leaves`, else each must be a 32-byte hash already. */
static PyObject *merkle_common(PyObject *arg, int hash_leaves) {
    PyObject *seq = PySequence_Fast(arg, "leaves must be a sequence of bytes");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    uint8_t out[32];
    if (n == 0) {
        Py_DECREF(seq);
        ctx_t c;
        ctx_init(&c);
        ctx_final(&c, out);
        return PyBytes_FromStringAndSize((const char *)out, 32);
    }
    uint8_t *buf = (size_t)n > PY_SSIZE_T_MAX / 32 ? NULL : PyMem_Malloc(32 * (size_t)n);
    if (!buf) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyBytes_Check(items[i])) {
            PyErr_Format(PyExc_TypeError, "leaf %zd is not bytes", i);
            goto fail;
        }
        const uint8_t *p = (const uint8_t *)PyBytes_AS_STRING(items[i]);
        Py_ssize_t len = PyBytes_GET_SIZE(items[i]);
        if (hash_leaves) {
            leaf_hash(p, (size_t)len, buf + 32 * i);
        } else {
            if (len != 32) {
                PyErr_SetString(PyExc_ValueError, "Merkle nodes must be 32-byte hashes");
                goto fail;
            }
            memcpy(buf + 32 * i, p, 32);
        }
    }
    Py_BEGIN_ALLOW_THREADS
    root_in_place(buf, (size_t)n);
    Py_END_ALLOW_THREADS
    memcpy(out, buf, 32);
    PyMem_Free(buf);
    Py_DECREF(seq);
    return PyBytes_FromStringAndSize((const char *)out, 32);
fail:
    PyMem_Free(buf);
    Py_DECREF(seq);
    return NULL;
}

static PyObject *py_merkle_root(PyObject *self, PyObject *arg) { return merkle_common(arg, 1); }

static PyObject *py_root_of_leaf_hashes(PyObject *self, PyObject *arg) { return merkle_common(arg, 0); }

static PyObject *py_crc32(PyObject *self, PyObject *arg) {
    Py_buffer v;
    uint32_t crc;
    if (PyObject_GetBuffer(arg, &v, PyBUF_SIMPLE) < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS
    crc = crc32_of(v.buf, (size_t)v.len);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&v);
    return PyLong_FromUnsignedLong(crc);
}

static PyObject *py_implementation(PyObject *self, PyObject *unused) {
    return PyUnicode_FromString(compress == blocks_portable ? "portable" : "sha-ni");
}

PyDoc_STRVAR(use_doc,
             "_use(name) -> None\n\nTests only, with no job running: select the compression function, 'portable' or 'sha-ni'; "
             "'portable' also computes CRC-32 from tables, 'sha-ni' with PCLMULQDQ where the CPU has it. "
             "ValueError if this CPU cannot run it.");

static PyObject *py_use(PyObject *self, PyObject *arg) {
    const char *name = PyUnicode_AsUTF8(arg);
    if (!name) return NULL;
    if (strcmp(name, "portable") == 0) {
        compress = blocks_portable;
        use_clmul = 0;
        Py_RETURN_NONE;
    }
#ifdef HAVE_X86
    if (strcmp(name, "sha-ni") == 0 && cpu_has_shani()) {
        compress = blocks_shani;
        use_clmul = cpu_has_clmul();
        Py_RETURN_NONE;
    }
#endif
    PyErr_Format(PyExc_ValueError, "compression %R is not available here", arg);
    return NULL;
}

static PyMethodDef methods[] = {
    {"sha256", py_sha256, METH_O, "sha256(data) -> bytes"},
    {"crc32", py_crc32, METH_O, "crc32(data) -> int: as zlib.crc32(data) (for tests)"},
    {"digest_ranges", (PyCFunction)(void (*)(void))py_digest_ranges, METH_FASTCALL, digest_ranges_doc},
    {"merkle_root", py_merkle_root, METH_O, "merkle_root(leaves) -> bytes: RFC 6962 MTH over leaf data"},
    {"root_of_leaf_hashes", py_root_of_leaf_hashes, METH_O,
     "root_of_leaf_hashes(hashes) -> bytes: RFC 6962 MTH from the leaf hashes up"},
    {"root_of_ranges", (PyCFunction)(void (*)(void))py_root_of_ranges, METH_FASTCALL, root_of_ranges_doc},
    {"implementation", py_implementation, METH_NOARGS, "implementation() -> 'sha-ni' | 'portable'"},
    {"_use", py_use, METH_O, use_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_sha256native",
    .m_doc = "Batched SHA-256 and RFC 6962 Merkle roots.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__sha256native(void) {
#ifdef HAVE_X86
    if (cpu_has_shani()) compress = blocks_shani;
    use_clmul = cpu_has_clmul();
#endif
    crc_init();
    if (PyType_Ready(&RootJobType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&RootJobType);
    if (PyModule_AddObject(m, "RootJob", (PyObject *)&RootJobType) < 0) {
        Py_DECREF(&RootJobType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
