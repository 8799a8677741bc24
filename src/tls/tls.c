/* TLS termination with OpenSSL 3: builds the SSL_CTXs of one TLS listener (certificates grouped
 * by name set, SNI, ALPN, session cache and tickets, OCSP stapling, client certificates) and
 * owns the session ticket keys that every worker shares. It never reads or writes a socket
 * itself: the caller drives every SSL it hands out, so nothing here blocks on the network. */
#include "tls/tls.h"

#include "core/log.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_CIPHERS                                                                            \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define DEFAULT_GROUPS "X25519:P-256"

#define OCSP_MAX_SIZE (1u << 20) /* a stapled response is a few KiB; refuse absurd files */
#define NAME_MAX_LEN  253        /* a DNS name without its trailing dot */

/* The same on every context, so a session made under one SNI context resumes under another
 * (OpenSSL refuses a session whose id context differs from the SSL's). */
static const unsigned char session_id_context[] = "portico";

/* One session ticket key: the name is sent in clear in the ticket and picks the key. */
struct ticket_key {
    unsigned char name[16];
    unsigned char aes[32];  /* AES-256-CBC */
    unsigned char hmac[32]; /* HMAC-SHA256 */
};

/* One certificate in a context. */
struct tls_leaf {
    X509 *cert;         /* the leaf certificate (a reference) */
    int key_type;       /* EVP_PKEY base id of its public key: one per context */
    unsigned char *der; /* OCSP response to staple (OPENSSL_malloc'd), or NULL */
    size_t der_len;
    time_t der_until;      /* its nextUpdate: not stapled after that (0: no nextUpdate) */
    atomic_bool der_stale; /* that time passed (said once in the log) */
};

/* One SSL_CTX: every certificate of one name set, at most one per key type, so OpenSSL picks
 * among them (RSA or ECDSA) by what the client supports. */
struct tls_ctx {
    SSL_CTX *ctx;
    char **names; /* sorted, lowercase, without trailing dot; as in the certificate */
    uint32_t nnames;
    struct tls_leaf *leaves;
    uint32_t nleaves;
};

/* An SNI table entry: an exact name, or for "*.example.com" the suffix "example.com". */
struct sni_entry {
    const char *name; /* points into a tls_ctx's names */
    uint32_t ctx;     /* index into set->ctxs; the lower wins when two contexts share a name */
};

/* Everything one load of the certificates built. The server holds one reference to its
 * current set and every SSL made from it holds one (dropped by SSL_free through the ex_data
 * free callback), so a reload never frees what a live SSL's callbacks still reach. */
struct tls_set {
    atomic_uint refs;
    struct tls_ctx *ctxs; /* ctxs[0] holds certs[0]: the default */
    uint32_t nctxs;
    struct sni_entry *exact;
    uint32_t nexact;
    struct sni_entry *wild;
    uint32_t nwild;
};

/* Sessions as DER, kept by the server rather than by an SSL_CTX so that a reload, which makes
 * new contexts with empty caches, does not forget them. OpenSSL's own cache in each context
 * stays the fast path; this store is written next to it (new_session_cb), emptied with it
 * (remove_session_cb: timeouts, evictions, failed sessions) and read when it misses
 * (get_session_cb), which after a reload is the first resumption of each session. A ring of
 * session_cache entries, oldest overwritten, indexed by a hash of the session id. Used when
 * session tickets are off (tls_server_new says why). */
struct sess_ent {
    unsigned char id[SSL_MAX_SSL_SESSION_ID_LENGTH];
    unsigned int idlen;
    int32_t next; /* bucket chain, -1 ends it */
    bool used;
    unsigned char *der;
    long derlen;
};

struct sess_store {
    pthread_mutex_t mu;
    struct sess_ent *ents; /* cap of them */
    int32_t *buckets;      /* nbuckets (a power of two) chain heads, -1 empty */
    uint32_t cap, nbuckets, pos;
};

struct tls_server {
    struct config_tls cfg;      /* a deep copy: reload reads it again after the config is gone */
    struct sess_store sessions; /* cap 0: no session cache */
    EVP_CIPHER *aes;            /* AES-256-CBC fetched once, not on every ticket */

    pthread_rwlock_t set_lock; /* guards the set pointer (not the set, which is refcounted) */
    struct tls_set *set;

    pthread_rwlock_t key_lock;  /* guards keys and has_prev; readers are handshakes */
    struct ticket_key keys[2];  /* [0] current: encrypts and decrypts; [1] previous: decrypts */
    bool has_prev;              /* keys[1] is valid */
    _Atomic uint64_t rotate_at; /* monotonic ms of the next rotation; UINT64_MAX: never */
};

/* ex_data slots, registered once per process. */
static int ssl_set_idx = -1;    /* SSL -> its struct tls_set (a reference) */
static int ssl_fail_idx = -1;   /* SSL -> non-NULL once a client certificate failed to verify */
static int ctx_server_idx = -1; /* SSL_CTX -> its struct tls_server */
static pthread_once_t idx_once = PTHREAD_ONCE_INIT;
static char verify_failed_mark;

static uint64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static char *
dup_or_null(const char *s)
{
    return s ? pt_strdup(s) : NULL;
}

/* ---- the session store (struct sess_store) ---- */

static uint32_t
sess_hash(const unsigned char *id, unsigned int len)
{
    uint32_t h = 2166136261u; /* FNV-1a: ids are random already */
    for (unsigned int i = 0; i < len; i++)
        h = (h ^ id[i]) * 16777619u;
    return h;
}

static void
sess_store_init(struct sess_store *st, uint32_t cap)
{
    memset(st, 0, sizeof(*st));
    pthread_mutex_init(&st->mu, NULL);
    if (cap == 0)
        return;
    st->cap = cap;
    st->nbuckets = 1;
    while (st->nbuckets < cap)
        st->nbuckets <<= 1;
    st->ents = pt_calloc(cap, sizeof(*st->ents));
    st->buckets = pt_calloc(st->nbuckets, sizeof(*st->buckets));
    for (uint32_t i = 0; i < st->nbuckets; i++)
        st->buckets[i] = -1;
}

/* Unlinks and clears entry <i> (the lock held). */
static void
sess_drop(struct sess_store *st, int32_t i)
{
    struct sess_ent *e = &st->ents[i];
    int32_t *pp = &st->buckets[sess_hash(e->id, e->idlen) & (st->nbuckets - 1)];
    while (*pp != i)
        pp = &st->ents[*pp].next;
    *pp = e->next;
    OPENSSL_clear_free(e->der, (size_t)e->derlen); /* it holds the session's secret */
    e->der = NULL;
    e->used = false;
}

/* The entry for <id>, or -1 (the lock held). */
static int32_t
sess_find(const struct sess_store *st, const unsigned char *id, unsigned int len)
{
    for (int32_t i = st->buckets[sess_hash(id, len) & (st->nbuckets - 1)]; i >= 0;
         i = st->ents[i].next)
        if (st->ents[i].idlen == len && !memcmp(st->ents[i].id, id, len))
            return i;
    return -1;
}

static void
sess_store_free(struct sess_store *st)
{
    for (uint32_t i = 0; i < st->cap; i++)
        if (st->ents[i].used)
            OPENSSL_clear_free(st->ents[i].der, (size_t)st->ents[i].derlen);
    free(st->ents);
    free(st->buckets);
    pthread_mutex_destroy(&st->mu);
}

static struct sess_store *
ctx_store(SSL_CTX *ctx)
{
    struct tls_server *t = SSL_CTX_get_ex_data(ctx, ctx_server_idx);
    return t && t->sessions.cap ? &t->sessions : NULL;
}

static int
on_sess_new(SSL *ssl, SSL_SESSION *sess)
{
    struct sess_store *st = ctx_store(SSL_get_SSL_CTX(ssl));
    unsigned int len;
    const unsigned char *id = SSL_SESSION_get_id(sess, &len);
    unsigned char *der = NULL;
    int n;

    if (!st || len == 0 || len > SSL_MAX_SSL_SESSION_ID_LENGTH)
        return 0;
    n = i2d_SSL_SESSION(sess, &der);
    if (n <= 0) {
        ERR_clear_error();
        return 0;
    }
    pthread_mutex_lock(&st->mu);
    int32_t i = sess_find(st, id, len);
    if (i >= 0) {
        /* known (a resumption can report its session again): refreshed where it is, so that
         * it pushes no other session out */
        OPENSSL_clear_free(st->ents[i].der, (size_t)st->ents[i].derlen);
        st->ents[i].der = der;
        st->ents[i].derlen = n;
        pthread_mutex_unlock(&st->mu);
        return 0;
    }
    i = (int32_t)st->pos;
    st->pos = (st->pos + 1) % st->cap;
    if (st->ents[i].used)
        sess_drop(st, i); /* the oldest goes */
    struct sess_ent *e = &st->ents[i];
    memcpy(e->id, id, len);
    e->idlen = len;
    e->der = der;
    e->derlen = n;
    e->used = true;
    int32_t *head = &st->buckets[sess_hash(id, len) & (st->nbuckets - 1)];
    e->next = *head;
    *head = i;
    pthread_mutex_unlock(&st->mu);
    return 0; /* the store keeps a copy, not this reference */
}

static SSL_SESSION *
on_sess_get(SSL *ssl, const unsigned char *id, int len, int *copy)
{
    struct sess_store *st = ctx_store(SSL_get_SSL_CTX(ssl));
    SSL_SESSION *sess = NULL;

    *copy = 0;
    if (!st || len <= 0 || len > SSL_MAX_SSL_SESSION_ID_LENGTH)
        return NULL;
    pthread_mutex_lock(&st->mu);
    int32_t i = sess_find(st, id, (unsigned int)len);
    if (i >= 0) {
        const unsigned char *p = st->ents[i].der;
        sess = d2i_SSL_SESSION(NULL, &p, st->ents[i].derlen);
    }
    pthread_mutex_unlock(&st->mu);
    if (!sess)
        ERR_clear_error();
    return sess; /* OpenSSL checks its age and takes this reference */
}

static void
on_sess_remove(SSL_CTX *ctx, SSL_SESSION *sess)
{
    struct sess_store *st = ctx_store(ctx);
    unsigned int len;
    const unsigned char *id = SSL_SESSION_get_id(sess, &len);

    if (!st || len == 0)
        return;
    pthread_mutex_lock(&st->mu);
    int32_t i = sess_find(st, id, len);
    if (i >= 0)
        sess_drop(st, i);
    pthread_mutex_unlock(&st->mu);
}

/* ---- sets and their lifetime ---- */

static void
set_free(struct tls_set *s)
{
    for (uint32_t i = 0; i < s->nctxs; i++) {
        struct tls_ctx *c = &s->ctxs[i];
        /* freeing a context flushes its cache through the remove callback: the store keeps
         * those sessions for the contexts of the next set */
        SSL_CTX_sess_set_remove_cb(c->ctx, NULL);
        SSL_CTX_free(c->ctx);
        for (uint32_t j = 0; j < c->nnames; j++)
            free(c->names[j]);
        free(c->names);
        for (uint32_t j = 0; j < c->nleaves; j++) {
            X509_free(c->leaves[j].cert);
            OPENSSL_free(c->leaves[j].der);
        }
        free(c->leaves);
    }
    free(s->ctxs);
    free(s->exact);
    free(s->wild);
    free(s);
}

static void
set_ref(struct tls_set *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

static void
set_unref(struct tls_set *s)
{
    if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        set_free(s);
}

/* SSL_free calls this for the set slot; the SSL still holds its own references to the
 * SSL_CTXs it used, so dropping the set's here is safe. */
static void
on_ssl_set_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    set_unref(ptr);
}

static void
init_indexes(void)
{
    ssl_set_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, on_ssl_set_free);
    ssl_fail_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    ctx_server_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* ---- callbacks (run on workers during handshakes) ---- */

/* SNI: the context of the exact name, else of the one-label wildcard, else the default. */
static const struct sni_entry *
sni_find(const struct sni_entry *v, uint32_t n, const char *name)
{
    uint32_t lo = 0, hi = n;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, v[mid].name);
        if (c == 0)
            return &v[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static int
on_servername(SSL *ssl, int *al, void *arg)
{
    const struct tls_set *s = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    const struct sni_entry *e = NULL;
    char lname[NAME_MAX_LEN + 2];
    size_t len;

    if (!name || s->nctxs == 1)
        return SSL_TLSEXT_ERR_OK;
    len = strlen(name);
    if (len > 0 && name[len - 1] == '.')
        len--;
    if (len == 0 || len > NAME_MAX_LEN)
        return SSL_TLSEXT_ERR_OK;
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        lname[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
    }
    lname[len] = '\0';

    e = sni_find(s->exact, s->nexact, lname);
    if (!e) {
        const char *dot = strchr(lname, '.');
        if (dot && dot > lname && dot[1])
            e = sni_find(s->wild, s->nwild, dot + 1);
    }
    if (e && e->ctx != 0) {
        SSL_CTX *ctx = s->ctxs[e->ctx].ctx;
        if (SSL_get_SSL_CTX(ssl) != ctx && SSL_set_SSL_CTX(ssl, ctx) != ctx) {
            *al = SSL_AD_INTERNAL_ERROR;
            return SSL_TLSEXT_ERR_ALERT_FATAL;
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

/* ALPN in the server's order: h2 (when enabled), then http/1.1. A client offering neither gets
 * no ALPN rather than a failed handshake. */
static int
on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
        unsigned int inlen, void *arg)
{
    static const struct {
        const char *name;
        unsigned char len;
    } ours[] = {{"h2", 2}, {"http/1.1", 8}};
    const struct tls_server *t = arg;

    for (size_t k = t->cfg.http2 ? 0 : 1; k < PT_ARRAY_LEN(ours); k++) {
        unsigned int i = 0;
        while (i < inlen) {
            unsigned int l = in[i];
            if (l == 0 || l > inlen - i - 1)
                break;
            if (l == ours[k].len && memcmp(in + i + 1, ours[k].name, l) == 0) {
                *out = (const unsigned char *)ours[k].name;
                *outlen = ours[k].len;
                return SSL_TLSEXT_ERR_OK;
            }
            i += 1 + l;
        }
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* Session tickets under Portico's keys: encrypt with the current key; decrypt with the current
 * (1) or the previous one (2: OpenSSL then issues a fresh ticket under the current key); an
 * unknown key name is no error, just a full handshake (0). The keys are copied out under the
 * read lock so the crypto runs without it. */
static int
on_ticket_key(SSL *ssl, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
              EVP_MAC_CTX *hctx, int enc)
{
    static char digest[] = "SHA256";
    struct tls_server *t = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_server_idx);
    struct ticket_key k;
    OSSL_PARAM params[3];
    int rc = 0, ok;

    if (!t)
        return -1;
    if (enc) {
        if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(t->aes)) != 1)
            return -1;
        pthread_rwlock_rdlock(&t->key_lock);
        k = t->keys[0];
        pthread_rwlock_unlock(&t->key_lock);
        memcpy(name, k.name, sizeof(k.name));
        rc = 1;
    } else {
        pthread_rwlock_rdlock(&t->key_lock);
        if (memcmp(name, t->keys[0].name, sizeof(k.name)) == 0) {
            k = t->keys[0];
            rc = 1;
        } else if (t->has_prev && memcmp(name, t->keys[1].name, sizeof(k.name)) == 0) {
            k = t->keys[1];
            rc = 2;
        }
        pthread_rwlock_unlock(&t->key_lock);
        if (rc == 0)
            return 0;
    }
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac, sizeof(k.hmac));
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
    params[2] = OSSL_PARAM_construct_end();
    ok = EVP_MAC_CTX_set_params(hctx, params) &&
         (enc ? EVP_EncryptInit_ex(cctx, t->aes, NULL, k.aes, iv)
              : EVP_DecryptInit_ex(cctx, t->aes, NULL, k.aes, iv));
    OPENSSL_cleanse(&k, sizeof(k));
    return ok ? rc : -1;
}

/* OCSP stapling: OpenSSL has chosen the certificate by now (SSL_get_certificate), so a
 * context holding RSA and ECDSA staples the response of the one it sends. */
static int
on_ocsp_status(SSL *ssl, void *arg)
{
    struct tls_ctx *c = arg;
    X509 *cert = SSL_get_certificate(ssl);

    for (uint32_t i = 0; i < c->nleaves; i++) {
        struct tls_leaf *l = &c->leaves[i];
        if (l->cert != cert || !l->der)
            continue;
        if (l->der_until && time(NULL) > l->der_until) {
            /* an expired staple makes clients fail the handshake: none is better */
            if (!atomic_exchange_explicit(&l->der_stale, true, memory_order_relaxed))
                log_warn("tls: the OCSP response for a certificate expired; no longer stapled "
                         "(reload with a fresh one)");
            return SSL_TLSEXT_ERR_NOACK;
        }
        unsigned char *copy = OPENSSL_memdup(l->der, l->der_len);
        if (!copy)
            return SSL_TLSEXT_ERR_NOACK;
        if (!SSL_set_tlsext_status_ocsp_resp(ssl, copy, (long)l->der_len)) {
            OPENSSL_free(copy);
            return SSL_TLSEXT_ERR_NOACK;
        }
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* client_auth optional: any certificate (or none) is let through, and a failure is marked on
 * the SSL, so tls_client_subject reports no subject for it. */
static int
on_verify_optional(int ok, X509_STORE_CTX *xs)
{
    if (!ok) {
        SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
        if (ssl)
            SSL_set_ex_data(ssl, ssl_fail_idx, &verify_failed_mark);
    }
    return 1;
}

/* ---- loading files ---- */

static BIO *
open_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    BIO *b;

    if (!f) {
        pt_seterr(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    b = BIO_new_fp(f, BIO_CLOSE);
    if (!b) {
        fclose(f);
        pt_seterr(err, errlen, "%s: out of memory", path);
    }
    return b;
}

/* Never prompts on a terminal for the passphrase of an encrypted key. */
static int
on_no_password(char *buf, int size, int rwflag, void *u)
{
    return -1;
}

/* Whether the PEM reader stopped only because the file ended. */
static bool
pem_at_end(void)
{
    unsigned long e = ERR_peek_last_error();

    return ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
}

/* Reads the certificate and chain of <cc> and its key, and checks they belong together. */
static int
load_pair(const struct config_cert *cc, X509 **leaf, STACK_OF(X509) * *chain, EVP_PKEY **key,
          char *err, size_t errlen)
{
    BIO *b;
    X509 *x;

    *leaf = NULL;
    *chain = NULL;
    *key = NULL;
    if (!(b = open_file(cc->cert, err, errlen)))
        return PT_ERR;
    *leaf = PEM_read_bio_X509_AUX(b, NULL, on_no_password, NULL);
    if (!*leaf) {
        pt_seterr(err, errlen, "%s: not a PEM certificate", cc->cert);
        goto fail;
    }
    *chain = sk_X509_new_null();
    if (!*chain) {
        pt_seterr(err, errlen, "%s: out of memory", cc->cert);
        goto fail;
    }
    while ((x = PEM_read_bio_X509(b, NULL, on_no_password, NULL)) != NULL) {
        if (!sk_X509_push(*chain, x)) {
            X509_free(x);
            pt_seterr(err, errlen, "%s: out of memory", cc->cert);
            goto fail;
        }
    }
    if (!pem_at_end()) {
        pt_seterr(err, errlen, "%s: certificate %d of the chain is not valid PEM", cc->cert,
                  sk_X509_num(*chain) + 2);
        goto fail;
    }
    ERR_clear_error();
    BIO_free(b);

    if (!(b = open_file(cc->key, err, errlen)))
        goto fail_nobio;
    *key = PEM_read_bio_PrivateKey(b, NULL, on_no_password, NULL);
    if (!*key) {
        pt_seterr(err, errlen, "%s: not a PEM private key (or an encrypted one)", cc->key);
        goto fail;
    }
    BIO_free(b);
    if (!X509_check_private_key(*leaf, *key)) {
        pt_seterr(err, errlen, "%s: does not match certificate %s", cc->key, cc->cert);
        goto fail_nobio;
    }
    return PT_OK;
fail:
    BIO_free(b);
fail_nobio:
    X509_free(*leaf);
    sk_X509_pop_free(*chain, X509_free);
    EVP_PKEY_free(*key);
    *leaf = NULL;
    *chain = NULL;
    *key = NULL;
    return PT_ERR;
}

/* <t> as "YYYY-MM-DD HH:MM:SS UTC" in <out>; returns it as a time_t (0 when unreadable). */
static time_t
asn1_time_text(const ASN1_TIME *t, char *out, size_t n)
{
    struct tm tm;
    if (!t || !ASN1_TIME_to_tm(t, &tm)) {
        snprintf(out, n, "(unreadable time)");
        return 0;
    }
    strftime(out, n, "%Y-%m-%d %H:%M:%S UTC", &tm);
    return timegm(&tm);
}

/* Checks that the OCSP response <resp> speaks of <leaf>, and is current: the single response
 * must carry the leaf's serial number and, when the issuer is in <chain>, its issuer's name
 * and key hashes (the CertID, RFC 6960 4.1.1), in whatever hash the responder used; it must
 * be current (thisUpdate at most 5 minutes ahead of our clock, nextUpdate not passed). Sets
 * *until to nextUpdate (0 when absent). A revoked or unknown status is stapled as it is, with
 * a warning: it is the truth the clients should hear. */
static int
check_ocsp(const char *path, const char *cert_path, OCSP_RESPONSE *resp, X509 *leaf,
           STACK_OF(X509) * chain, time_t *until, char *err, size_t errlen)
{
    OCSP_BASICRESP *bs = OCSP_response_get1_basic(resp);
    X509 *issuer = NULL;
    OCSP_SINGLERESP *match = NULL;
    const ASN1_INTEGER *serial = X509_get0_serialNumber(leaf);
    int reason = 0, status, rc = PT_ERR;
    ASN1_GENERALIZEDTIME *rev = NULL, *thisupd = NULL, *nextupd = NULL;
    char t1[48], t2[48];

    *until = 0;
    if (!bs) {
        pt_seterr(err, errlen, "%s: not a basic OCSP response", path);
        return PT_ERR;
    }
    for (int i = 0; i < sk_X509_num(chain) && !issuer; i++) {
        X509 *x = sk_X509_value(chain, i);
        if (X509_check_issued(x, leaf) == X509_V_OK)
            issuer = x;
    }
    for (int i = 0; i < OCSP_resp_count(bs) && !match; i++) {
        OCSP_SINGLERESP *sr = OCSP_resp_get0(bs, i);
        OCSP_CERTID *id = (OCSP_CERTID *)OCSP_SINGLERESP_get0_id(sr);
        ASN1_OBJECT *md_obj = NULL;
        ASN1_INTEGER *sn = NULL;
        if (!id || !OCSP_id_get0_info(NULL, &md_obj, NULL, &sn, id) || !sn ||
            ASN1_INTEGER_cmp(sn, serial) != 0)
            continue;
        if (issuer) {
            const EVP_MD *md = EVP_get_digestbyobj(md_obj);
            OCSP_CERTID *want = md ? OCSP_cert_to_id(md, leaf, issuer) : NULL;
            bool same = want && OCSP_id_cmp(want, id) == 0;
            OCSP_CERTID_free(want);
            if (!same)
                continue;
        }
        match = sr;
    }
    if (!match) {
        pt_seterr(err, errlen, "%s: the OCSP response is not about certificate %s%s", path,
                  cert_path, issuer ? "" : " (no serial number in it matches)");
        goto out;
    }
    status = OCSP_single_get0_status(match, &reason, &rev, &thisupd, &nextupd);
    asn1_time_text(thisupd, t1, sizeof(t1));
    time_t next = asn1_time_text(nextupd, t2, sizeof(t2));
    if (nextupd && X509_cmp_current_time(nextupd) < 0) {
        pt_seterr(err, errlen, "%s: the OCSP response expired at %s (its next update)", path, t2);
        goto out;
    }
    if (!thisupd || !OCSP_check_validity(thisupd, NULL, 300, -1)) {
        pt_seterr(err, errlen, "%s: the OCSP response is not valid before %s", path, t1);
        goto out;
    }
    if (status != V_OCSP_CERTSTATUS_GOOD)
        log_warn("tls: %s: the OCSP response says certificate %s is %s", path, cert_path,
                 OCSP_cert_status_str(status));
    *until = nextupd ? next : 0;
    rc = PT_OK;
out:
    OCSP_BASICRESP_free(bs);
    ERR_clear_error();
    return rc;
}

/* Reads the DER OCSP response <path>, checks it parses, says "successful" and is about <leaf>
 * and current (check_ocsp). */
static int
load_ocsp(const char *path, const char *cert_path, X509 *leaf, STACK_OF(X509) * chain,
          unsigned char **der, size_t *len, time_t *until, char *err, size_t errlen)
{
    BIO *b = open_file(path, err, errlen);
    BUF_MEM *mem = NULL;
    BIO *m = NULL;
    OCSP_RESPONSE *resp = NULL;
    const unsigned char *p;
    char chunk[4096];
    int n, status;

    *der = NULL;
    *len = 0;
    if (!b)
        return PT_ERR;
    m = BIO_new(BIO_s_mem());
    if (!m)
        goto nomem;
    while ((n = BIO_read(b, chunk, sizeof(chunk))) > 0) {
        if (BIO_write(m, chunk, n) != n)
            goto nomem;
        if (BIO_number_written(m) > OCSP_MAX_SIZE) {
            pt_seterr(err, errlen, "%s: larger than %u bytes: not an OCSP response", path,
                      OCSP_MAX_SIZE);
            goto fail;
        }
    }
    BIO_get_mem_ptr(m, &mem);
    p = (const unsigned char *)mem->data;
    resp = d2i_OCSP_RESPONSE(NULL, &p, (long)mem->length);
    if (!resp || p != (const unsigned char *)mem->data + mem->length) {
        pt_seterr(err, errlen, "%s: not a DER OCSP response", path);
        goto fail;
    }
    status = OCSP_response_status(resp);
    if (status != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        pt_seterr(err, errlen, "%s: OCSP response status is \"%s\", not successful", path,
                  OCSP_response_status_str(status));
        goto fail;
    }
    if (check_ocsp(path, cert_path, resp, leaf, chain, until, err, errlen) != PT_OK)
        goto fail;
    *der = OPENSSL_memdup(mem->data, mem->length);
    if (!*der)
        goto nomem;
    *len = mem->length;
    OCSP_RESPONSE_free(resp);
    BIO_free(m);
    BIO_free(b);
    return PT_OK;
nomem:
    pt_seterr(err, errlen, "%s: out of memory", path);
fail:
    OCSP_RESPONSE_free(resp);
    BIO_free(m);
    BIO_free(b);
    ERR_clear_error();
    return PT_ERR;
}

/* ---- certificate names ---- */

struct names {
    char **v;
    uint32_t n, cap;
};

static void
names_add(struct names *ns, const unsigned char *p, int len)
{
    char *s;

    if (len <= 0 || len > NAME_MAX_LEN + 1 || memchr(p, '\0', (size_t)len))
        return;
    if (p[len - 1] == '.')
        len--;
    if (len == 0)
        return;
    s = pt_malloc((size_t)len + 1);
    for (int i = 0; i < len; i++)
        s[i] = p[i] >= 'A' && p[i] <= 'Z' ? (char)(p[i] - 'A' + 'a') : (char)p[i];
    s[len] = '\0';
    if (ns->n == ns->cap) {
        ns->cap = ns->cap ? ns->cap * 2 : 4;
        ns->v = pt_realloc(ns->v, ns->cap * sizeof(*ns->v));
    }
    ns->v[ns->n++] = s;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The DNS names of the subjectAltName, or when it has none the (last) commonName: sorted,
 * duplicates dropped, so two name sets compare element by element. */
static void
cert_names(X509 *x, struct names *ns)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    uint32_t out = 0;

    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type == GEN_DNS)
            names_add(ns, ASN1_STRING_get0_data(g->d.dNSName), ASN1_STRING_length(g->d.dNSName));
    }
    GENERAL_NAMES_free(gens);
    if (ns->n == 0) {
        const X509_NAME *subj = X509_get_subject_name(x);
        int i = -1, last = -1;
        while ((i = X509_NAME_get_index_by_NID(subj, NID_commonName, i)) >= 0)
            last = i;
        if (last >= 0) {
            const ASN1_STRING *d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, last));
            unsigned char *u = NULL;
            int n = ASN1_STRING_to_UTF8(&u, d);
            if (n > 0)
                names_add(ns, u, n);
            OPENSSL_free(u);
        }
    }
    ERR_clear_error();
    if (ns->n > 1)
        qsort(ns->v, ns->n, sizeof(*ns->v), cmp_str);
    for (uint32_t i = 0; i < ns->n; i++) {
        if (out > 0 && strcmp(ns->v[out - 1], ns->v[i]) == 0)
            free(ns->v[i]);
        else
            ns->v[out++] = ns->v[i];
    }
    ns->n = out;
}

static void
names_free(struct names *ns)
{
    for (uint32_t i = 0; i < ns->n; i++)
        free(ns->v[i]);
    free(ns->v);
    memset(ns, 0, sizeof(*ns));
}

static bool
same_names(const struct tls_ctx *c, const struct names *ns)
{
    if (c->nnames != ns->n)
        return false;
    for (uint32_t i = 0; i < ns->n; i++) {
        if (strcmp(c->names[i], ns->v[i]) != 0)
            return false;
    }
    return true;
}

/* ---- building a set ---- */

/* Client-certificate material loaded once per set and shared by its contexts. */
struct client_ca {
    X509_STORE *store;
    STACK_OF(X509_NAME) * names;
};

static int
load_client_ca(const struct config_tls *c, struct client_ca *ca, char *err, size_t errlen)
{
    BIO *probe;

    memset(ca, 0, sizeof(*ca));
    if (c->client_auth == TLS_CLIENT_AUTH_OFF)
        return PT_OK;
    if (!c->client_ca) {
        pt_seterr(err, errlen, "tls: client_auth needs client_ca (a PEM bundle of CAs)");
        return PT_ERR;
    }
    /* Opened once first for a clear "cannot open" with the system's reason. */
    if (!(probe = open_file(c->client_ca, err, errlen)))
        return PT_ERR;
    BIO_free(probe);
    ca->store = X509_STORE_new();
    if (!ca->store || !X509_STORE_load_file(ca->store, c->client_ca)) {
        pt_seterr(err, errlen, "%s: not a PEM bundle of CA certificates", c->client_ca);
        goto fail;
    }
    ca->names = SSL_load_client_CA_file(c->client_ca);
    if (!ca->names || sk_X509_NAME_num(ca->names) == 0) {
        pt_seterr(err, errlen, "%s: no CA certificate in it", c->client_ca);
        goto fail;
    }
    ERR_clear_error();
    return PT_OK;
fail:
    X509_STORE_free(ca->store);
    sk_X509_NAME_pop_free(ca->names, X509_NAME_free);
    memset(ca, 0, sizeof(*ca));
    ERR_clear_error();
    return PT_ERR;
}

/* A context with every setting of the listener and no certificate yet. */
static SSL_CTX *
new_ctx(struct tls_server *t, struct tls_set *s, const struct client_ca *ca, char *err,
        size_t errlen)
{
    const struct config_tls *c = &t->cfg;
    const char *ciphers = c->ciphers ? c->ciphers : DEFAULT_CIPHERS;
    const char *groups = c->groups ? c->groups : DEFAULT_GROUPS;
    const char *suites = c->ciphersuites ? c->ciphersuites : TLS_DEFAULT_SUITES;
    /* the server's order decides, except for a client that lists ChaCha20 first: one without
     * AES instructions, for which ChaCha20 is the fast choice */
    uint64_t opts = SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA |
                    SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION;
    long timeout = (long)(c->session_timeout_ms / 1000);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (!ctx) {
        pt_seterr(err, errlen, "tls: cannot create a context: %s",
                  ERR_reason_error_string(ERR_peek_last_error()));
        return NULL;
    }
    if (!c->session_tickets)
        opts |= SSL_OP_NO_TICKET;
    SSL_CTX_set_options(ctx, opts);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1); /* one read takes every record waiting (tls_sock_drained) */
    if (!SSL_CTX_set_min_proto_version(ctx, c->min_version == 0x0304 ? TLS1_3_VERSION
                                                                     : TLS1_2_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, 0)) {
        pt_seterr(err, errlen, "tls: cannot set the protocol versions");
        goto fail;
    }
    if (!SSL_CTX_set_cipher_list(ctx, ciphers)) {
        pt_seterr(err, errlen, "tls: ciphers \"%s\": no usable TLS 1.2 cipher", ciphers);
        goto fail;
    }
    if (!SSL_CTX_set_ciphersuites(ctx, suites)) {
        pt_seterr(err, errlen, "tls: ciphersuites \"%s\": not a valid TLS 1.3 suite list", suites);
        goto fail;
    }
    if (!SSL_CTX_set1_groups_list(ctx, groups)) {
        pt_seterr(err, errlen, "tls: groups \"%s\": not a valid group list", groups);
        goto fail;
    }

    SSL_CTX_set_session_id_context(ctx, session_id_context, sizeof(session_id_context) - 1);
    if (c->session_cache > 0) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
        SSL_CTX_sess_set_cache_size(ctx, (long)c->session_cache);
        if (t->sessions.cap) {
            SSL_CTX_sess_set_new_cb(ctx, on_sess_new);
            SSL_CTX_sess_set_get_cb(ctx, on_sess_get);
            SSL_CTX_sess_set_remove_cb(ctx, on_sess_remove);
        }
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    SSL_CTX_set_timeout(ctx, timeout > 0 ? timeout : 1);
    /* TLS 1.3 with tickets off sends stateful tickets that point into the cache: none at all
     * when there is no cache either. */
    if (!c->session_tickets && c->session_cache == 0)
        SSL_CTX_set_num_tickets(ctx, 0);
    if (!SSL_CTX_set_ex_data(ctx, ctx_server_idx, t)) {
        pt_seterr(err, errlen, "tls: out of memory");
        goto fail;
    }
    if (c->session_tickets)
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket_key);

    SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
    SSL_CTX_set_tlsext_servername_arg(ctx, s);
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn, t);

    if (c->client_auth != TLS_CLIENT_AUTH_OFF) {
        STACK_OF(X509_NAME) *names = SSL_dup_CA_list(ca->names);
        if (!names) {
            pt_seterr(err, errlen, "tls: out of memory");
            goto fail;
        }
        SSL_CTX_set1_cert_store(ctx, ca->store);
        SSL_CTX_set_client_CA_list(ctx, names);
        if (c->client_auth == TLS_CLIENT_AUTH_REQUIRED)
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        else
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, on_verify_optional);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return NULL;
}

/* Loads certs[i] into the context of its name set (made when new). */
static int
add_cert(struct tls_server *t, struct tls_set *s, uint32_t i, const struct client_ca *ca, char *err,
         size_t errlen)
{
    const struct config_cert *cc = &t->cfg.certs[i];
    struct names ns = {0};
    struct tls_ctx *c = NULL;
    struct tls_leaf *l;
    X509 *leaf = NULL;
    STACK_OF(X509) *chain = NULL;
    EVP_PKEY *key = NULL;
    unsigned char *der = NULL;
    size_t der_len = 0;
    time_t der_until = 0;
    int key_type;

    if (load_pair(cc, &leaf, &chain, &key, err, errlen) != PT_OK)
        goto fail;
    if (cc->ocsp && load_ocsp(cc->ocsp, cc->cert, leaf, chain, &der, &der_len, &der_until, err,
                              errlen) != PT_OK)
        goto fail;
    key_type = EVP_PKEY_get_base_id(key);
    cert_names(leaf, &ns);

    /* Same names: the same context, unless it already has a certificate of this key type
     * (then this one gets its own context, which SNI never picks since the first wins). */
    for (uint32_t j = 0; j < s->nctxs && !c; j++) {
        if (!same_names(&s->ctxs[j], &ns))
            continue;
        c = &s->ctxs[j];
        for (uint32_t k = 0; k < c->nleaves && c; k++) {
            if (c->leaves[k].key_type == key_type)
                c = NULL;
        }
        if (!c && ns.n > 0)
            log_warn("tls: %s: same names and key type as an earlier certificate, so SNI never "
                     "picks it",
                     cc->cert);
    }
    if (!c) {
        SSL_CTX *ctx = new_ctx(t, s, ca, err, errlen);
        if (!ctx)
            goto fail;
        c = &s->ctxs[s->nctxs++];
        c->ctx = ctx;
        c->names = ns.v;
        c->nnames = ns.n;
        memset(&ns, 0, sizeof(ns));
    }
    if (!SSL_CTX_use_cert_and_key(c->ctx, leaf, key, chain, 1)) {
        char why[256];
        pt_seterr(err, errlen, "%s: refused by OpenSSL: %s", cc->cert,
                  tls_error_string(why, sizeof(why)));
        goto fail;
    }
    if (der) {
        SSL_CTX_set_tlsext_status_cb(c->ctx, on_ocsp_status);
        SSL_CTX_set_tlsext_status_arg(c->ctx, c);
    }
    c->leaves = pt_realloc(c->leaves, (c->nleaves + 1) * sizeof(*c->leaves));
    l = &c->leaves[c->nleaves++];
    l->cert = leaf;
    l->key_type = key_type;
    l->der = der;
    l->der_len = der_len;
    l->der_until = der_until;
    atomic_init(&l->der_stale, false);
    sk_X509_pop_free(chain, X509_free);
    EVP_PKEY_free(key);
    names_free(&ns);
    return PT_OK;
fail:
    if (cc->where && err && errlen) {
        /* where the configuration names this certificate, as for every configuration error */
        char why[512];
        snprintf(why, sizeof(why), "%s", err);
        snprintf(err, errlen, "%s: %s", cc->where, why);
    }
    X509_free(leaf);
    sk_X509_pop_free(chain, X509_free);
    EVP_PKEY_free(key);
    OPENSSL_free(der);
    names_free(&ns);
    ERR_clear_error();
    return PT_ERR;
}

static int
cmp_sni(const void *a, const void *b)
{
    const struct sni_entry *x = a, *y = b;
    int c = strcmp(x->name, y->name);

    if (c != 0)
        return c;
    return x->ctx < y->ctx ? -1 : x->ctx > y->ctx;
}

/* Sorts <v> and keeps the first context of each name. */
static uint32_t
sni_sort(struct sni_entry *v, uint32_t n)
{
    uint32_t out = 0;

    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_sni);
    for (uint32_t i = 0; i < n; i++) {
        if (out == 0 || strcmp(v[out - 1].name, v[i].name) != 0)
            v[out++] = v[i];
    }
    return out;
}

static void
build_sni(struct tls_set *s)
{
    uint32_t total = 0;

    for (uint32_t i = 0; i < s->nctxs; i++)
        total += s->ctxs[i].nnames;
    s->exact = pt_calloc(total, sizeof(*s->exact));
    s->wild = pt_calloc(total, sizeof(*s->wild));
    for (uint32_t i = 0; i < s->nctxs; i++) {
        for (uint32_t j = 0; j < s->ctxs[i].nnames; j++) {
            const char *name = s->ctxs[i].names[j];
            if (name[0] == '*' && name[1] == '.' && name[2])
                s->wild[s->nwild++] = (struct sni_entry){.name = name + 2, .ctx = i};
            else
                s->exact[s->nexact++] = (struct sni_entry){.name = name, .ctx = i};
        }
    }
    s->nexact = sni_sort(s->exact, s->nexact);
    s->nwild = sni_sort(s->wild, s->nwild);
}

/* Reads every file of the config and builds a new set with one reference, or NULL. */
static struct tls_set *
set_build(struct tls_server *t, char *err, size_t errlen)
{
    const struct config_tls *c = &t->cfg;
    struct tls_set *s;
    struct client_ca ca;

    if (c->ncerts == 0 || !c->certs) {
        pt_seterr(err, errlen, "tls: no certificate");
        return NULL;
    }
    ERR_clear_error();
    if (load_client_ca(c, &ca, err, errlen) != PT_OK)
        return NULL;
    s = pt_calloc(1, sizeof(*s));
    atomic_init(&s->refs, 1);
    s->ctxs = pt_calloc(c->ncerts, sizeof(*s->ctxs));
    for (uint32_t i = 0; i < c->ncerts; i++) {
        if (add_cert(t, s, i, &ca, err, errlen) != PT_OK) {
            set_free(s);
            s = NULL;
            break;
        }
    }
    if (s)
        build_sni(s);
    X509_STORE_free(ca.store);
    sk_X509_NAME_pop_free(ca.names, X509_NAME_free);
    return s;
}

/* ---- the server ---- */

static void
cfg_copy(struct config_tls *dst, const struct config_tls *src)
{
    *dst = *src;
    dst->certs = src->ncerts ? pt_calloc(src->ncerts, sizeof(*dst->certs)) : NULL;
    for (uint32_t i = 0; i < src->ncerts && src->certs; i++) {
        dst->certs[i].cert = dup_or_null(src->certs[i].cert);
        dst->certs[i].key = dup_or_null(src->certs[i].key);
        dst->certs[i].ocsp = dup_or_null(src->certs[i].ocsp);
        dst->certs[i].where = dup_or_null(src->certs[i].where);
    }
    if (!src->certs)
        dst->ncerts = 0;
    dst->ciphers = dup_or_null(src->ciphers);
    dst->ciphersuites = dup_or_null(src->ciphersuites);
    dst->groups = dup_or_null(src->groups);
    dst->client_ca = dup_or_null(src->client_ca);
    dst->client_subject_header = dup_or_null(src->client_subject_header);
    dst->hsts = dup_or_null(src->hsts);
}

static void
cfg_free(struct config_tls *c)
{
    for (uint32_t i = 0; i < c->ncerts; i++) {
        free(c->certs[i].cert);
        free(c->certs[i].key);
        free(c->certs[i].ocsp);
        free(c->certs[i].where);
    }
    free(c->certs);
    free(c->ciphers);
    free(c->ciphersuites);
    free(c->groups);
    free(c->client_ca);
    free(c->client_subject_header);
    free(c->hsts);
}

static int
new_ticket_key(struct ticket_key *k)
{
    return RAND_bytes((unsigned char *)k, sizeof(*k)) == 1 ? PT_OK : PT_ERR;
}

struct tls_server *
tls_server_new(const struct config_tls *cfg, char *err, size_t errlen)
{
    struct tls_server *t;

    pthread_once(&idx_once, init_indexes);
    if (ssl_set_idx < 0 || ssl_fail_idx < 0 || ctx_server_idx < 0) {
        pt_seterr(err, errlen, "tls: cannot register OpenSSL ex_data slots");
        return NULL;
    }
    t = pt_calloc(1, sizeof(*t));
    cfg_copy(&t->cfg, cfg);
    /* With tickets on, sessions resume across a reload through them (the keys are the
     * server's), and OpenSSL keeps TLS 1.3 ticket sessions out of its cache unless a remove
     * callback is set: the store would only double that memory. */
    sess_store_init(&t->sessions, t->cfg.session_tickets ? 0 : t->cfg.session_cache);
    pthread_rwlock_init(&t->set_lock, NULL);
    pthread_rwlock_init(&t->key_lock, NULL);
    atomic_init(&t->rotate_at, UINT64_MAX);
    t->aes = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
    if (!t->aes || new_ticket_key(&t->keys[0]) != PT_OK) {
        pt_seterr(err, errlen, "tls: cannot set up session ticket keys: %s",
                  ERR_reason_error_string(ERR_peek_last_error()));
        ERR_clear_error();
        goto fail;
    }
    if (t->cfg.session_tickets && t->cfg.ticket_rotate_ms > 0)
        atomic_store(&t->rotate_at, now_ms() + t->cfg.ticket_rotate_ms);
    t->set = set_build(t, err, errlen);
    if (!t->set)
        goto fail;
    return t;
fail:
    tls_server_free(t);
    return NULL;
}

int
tls_server_reload(struct tls_server *t, char *err, size_t errlen)
{
    struct tls_set *s = set_build(t, err, errlen), *old;

    if (!s)
        return PT_ERR;
    pthread_rwlock_wrlock(&t->set_lock);
    old = t->set;
    t->set = s;
    pthread_rwlock_unlock(&t->set_lock);
    set_unref(old);
    return PT_OK;
}

void
tls_server_free(struct tls_server *t)
{
    if (!t)
        return;
    set_unref(t->set);
    sess_store_free(&t->sessions);
    EVP_CIPHER_free(t->aes);
    OPENSSL_cleanse(t->keys, sizeof(t->keys));
    pthread_rwlock_destroy(&t->key_lock);
    pthread_rwlock_destroy(&t->set_lock);
    cfg_free(&t->cfg);
    free(t);
}

SSL *
tls_server_ssl(struct tls_server *t, int fd)
{
    struct tls_set *s;
    SSL *ssl;
    char why[256];

    pthread_rwlock_rdlock(&t->set_lock);
    s = t->set;
    set_ref(s);
    pthread_rwlock_unlock(&t->set_lock);

    ssl = SSL_new(s->ctxs[0].ctx);
    if (!ssl) {
        set_unref(s);
        log_error("tls: cannot create an SSL: %s", tls_error_string(why, sizeof(why)));
        return NULL;
    }
    /* From here SSL_free drops the set's reference. */
    if (!SSL_set_ex_data(ssl, ssl_set_idx, s)) {
        set_unref(s);
        goto fail;
    }
    if (!tls_sock_attach(ssl, fd))
        goto fail;
    SSL_set_accept_state(ssl);
    return ssl;
fail:
    log_error("tls: cannot set up an SSL: %s", tls_error_string(why, sizeof(why)));
    SSL_free(ssl);
    return NULL;
}

void
tls_server_rotate_tickets(struct tls_server *t)
{
    struct ticket_key k;

    if (new_ticket_key(&k) != PT_OK) {
        char why[256];
        log_error("tls: cannot make a session ticket key: %s", tls_error_string(why, sizeof(why)));
        return;
    }
    pthread_rwlock_wrlock(&t->key_lock);
    t->keys[1] = t->keys[0];
    t->keys[0] = k;
    t->has_prev = true;
    pthread_rwlock_unlock(&t->key_lock);
    OPENSSL_cleanse(&k, sizeof(k));
}

void
tls_server_tick(struct tls_server *t)
{
    uint64_t due = atomic_load_explicit(&t->rotate_at, memory_order_relaxed), now;

    if (due == UINT64_MAX)
        return;
    now = now_ms();
    if (now < due)
        return;
    /* Two threads ticking at once rotate once. */
    if (!atomic_compare_exchange_strong(&t->rotate_at, &due, now + t->cfg.ticket_rotate_ms))
        return;
    tls_server_rotate_tickets(t);
}

const char *
tls_alpn(SSL *ssl, size_t *len)
{
    const unsigned char *p = NULL;
    unsigned int n = 0;

    SSL_get0_alpn_selected(ssl, &p, &n);
    if (len)
        *len = n;
    /* Our own literals (NUL-terminated) rather than OpenSSL's unterminated copy. */
    if (n == 2 && memcmp(p, "h2", 2) == 0)
        return "h2";
    if (n == 8 && memcmp(p, "http/1.1", 8) == 0)
        return "http/1.1";
    if (len)
        *len = 0;
    return NULL;
}

size_t
tls_client_subject(SSL *ssl, char *out, size_t cap)
{
    X509 *x = SSL_get0_peer_certificate(ssl);
    BIO *b;
    char *p = NULL;
    long n;
    size_t len = 0;

    if (cap == 0)
        return 0;
    out[0] = '\0';
    if (!x || SSL_get_verify_result(ssl) != X509_V_OK || SSL_get_ex_data(ssl, ssl_fail_idx))
        return 0;
    b = BIO_new(BIO_s_mem());
    if (!b)
        return 0;
    /* RFC 2253 escapes control characters and non-ASCII bytes, so the result is safe to put
     * in a header field. */
    if (X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0 &&
        (n = BIO_get_mem_data(b, &p)) > 0) {
        len = PT_MIN((size_t)n, cap - 1);
        memcpy(out, p, len);
        out[len] = '\0';
    }
    BIO_free(b);
    ERR_clear_error();
    return len;
}

const char *
tls_error_string(char *out, size_t cap)
{
    size_t n = 0;
    unsigned long e;
    const char *data;
    int flags;

    if (cap == 0) {
        ERR_clear_error();
        return out;
    }
    out[0] = '\0';
    while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
        char one[256];
        int w;
        if (n + 1 >= cap)
            continue; /* keep draining the queue */
        ERR_error_string_n(e, one, sizeof(one));
        if ((flags & ERR_TXT_STRING) && data && *data)
            w = snprintf(out + n, cap - n, "%s%s (%s)", n ? "; " : "", one, data);
        else
            w = snprintf(out + n, cap - n, "%s%s", n ? "; " : "", one);
        if (w > 0)
            n = PT_MIN(n + (size_t)w, cap - 1);
    }
    if (n == 0)
        snprintf(out, cap, "no OpenSSL error recorded");
    return out;
}
