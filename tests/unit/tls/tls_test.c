/* Tests of TLS termination (src/tls/tls.c). Keys and certificates are made at start with the
 * OpenSSL API into a mkdtemp directory (a CA, RSA and ECDSA certificates for a.example.com, an
 * ECDSA one for *.wild.example.com, a CN-only default, client certificates, an OCSP response);
 * then real handshakes run between a client SSL and tls_server_ssl over a non-blocking
 * socketpair, both sides driven in turn in one thread, so every case is deterministic. Ticket
 * rotation is forced with tls_server_rotate_tickets, and once through the timer
 * (tls_server_tick after sleeping past a short ticket_rotate_ms). */
#include "tls/tls.h"

#include "test.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- generated material ---- */

struct pem {
    X509 *x;
    EVP_PKEY *k;
    char cert[256]; /* PEM path of the certificate (and its chain, when signed by the CA) */
    char key[256];  /* PEM path of the key */
};

static char dir[64] = "/tmp/pt-tls-XXXXXX";
static struct pem ca, rsa_a, ec_a, wild, dflt, client, rogue;
static char ocsp_path[256];
static unsigned char *ocsp_der;
static int ocsp_len;
static SSL_CTX *cctx; /* the client side of every test */
static long serial = 1;

static void
path_in(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static void
write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len) {
        perror(path);
        exit(2);
    }
    fclose(f);
}

static EVP_PKEY *
make_key(bool rsa)
{
    EVP_PKEY *k = rsa ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
                      : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!k) {
        fprintf(stderr, "key generation failed\n");
        exit(2);
    }
    return k;
}

static void
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *e;

    X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
    e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (!e || !X509_add_ext(x, e, -1)) {
        fprintf(stderr, "extension %s failed\n", value);
        exit(2);
    }
    X509_EXTENSION_free(e);
}

/* A certificate for <key>: subject O=<org>,CN=<cn>, SAN <san> when given, signed by
 * <issuer> (else self-signed). */
static X509 *
make_cert(EVP_PKEY *key, const char *org, const char *cn, const char *san, const struct pem *issuer,
          bool is_ca)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_get_subject_name(x);

    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    if (org)
        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)org, -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer->x) : name);
    if (is_ca) {
        add_ext(x, NULL, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x, NULL, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(x, issuer ? issuer->x : NULL, NID_basic_constraints, "CA:FALSE");
    }
    if (san)
        add_ext(x, issuer ? issuer->x : NULL, NID_subject_alt_name, san);
    if (!X509_sign(x, issuer ? issuer->k : key, EVP_sha256())) {
        fprintf(stderr, "signing failed\n");
        exit(2);
    }
    return x;
}

/* Writes <p> as <name>.pem (with the CA after it when <chain>) and <name>.key. */
static void
write_pem(struct pem *p, const char *name, bool chain)
{
    char file[64];
    FILE *f;

    snprintf(file, sizeof(file), "%s.pem", name);
    path_in(p->cert, sizeof(p->cert), file);
    snprintf(file, sizeof(file), "%s.key", name);
    path_in(p->key, sizeof(p->key), file);
    f = fopen(p->cert, "w");
    PEM_write_X509(f, p->x);
    if (chain)
        PEM_write_X509(f, ca.x);
    fclose(f);
    f = fopen(p->key, "w");
    PEM_write_PrivateKey(f, p->k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
}

static void
make_pem(struct pem *p, const char *name, bool rsa, const char *org, const char *cn,
         const char *san, bool signed_by_ca)
{
    p->k = make_key(rsa);
    p->x = make_cert(p->k, org, cn, san, signed_by_ca ? &ca : NULL, false);
    write_pem(p, name, signed_by_ca);
}

/* A successful basic OCSP response saying ec_a is good, signed by the CA. */
static void
make_ocsp(void)
{
    OCSP_BASICRESP *bs = OCSP_BASICRESP_new();
    OCSP_CERTID *id = OCSP_cert_to_id(NULL, ec_a.x, ca.x);
    ASN1_TIME *now = X509_gmtime_adj(NULL, 0);
    ASN1_TIME *next = X509_gmtime_adj(NULL, 86400);
    OCSP_RESPONSE *resp;
    unsigned char *p = NULL;

    if (!bs || !id || !OCSP_basic_add1_status(bs, id, V_OCSP_CERTSTATUS_GOOD, 0, NULL, now, next) ||
        !OCSP_basic_sign(bs, ca.x, ca.k, EVP_sha256(), NULL, 0)) {
        fprintf(stderr, "OCSP response failed\n");
        exit(2);
    }
    resp = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, bs);
    ocsp_len = i2d_OCSP_RESPONSE(resp, &p);
    ocsp_der = p;
    path_in(ocsp_path, sizeof(ocsp_path), "ec_a.ocsp");
    write_file(ocsp_path, ocsp_der, (size_t)ocsp_len);
    OCSP_RESPONSE_free(resp);
    OCSP_CERTID_free(id);
    OCSP_BASICRESP_free(bs);
    ASN1_TIME_free(now);
    ASN1_TIME_free(next);
}

static void
setup(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(2);
    }
    ca.k = make_key(false);
    ca.x = make_cert(ca.k, "Portico Test", "Portico Test CA", NULL, NULL, true);
    write_pem(&ca, "ca", false);
    make_pem(&rsa_a, "rsa_a", true, NULL, "a.example.com", "DNS:a.example.com", true);
    make_pem(&ec_a, "ec_a", false, NULL, "a.example.com", "DNS:a.example.com", true);
    make_pem(&wild, "wild", false, NULL, "wild", "DNS:*.wild.example.com", false);
    make_pem(&dflt, "default", false, NULL, "default.example.com", NULL, false);
    make_pem(&client, "client", false, "Portico Test", "client", NULL, true);
    make_pem(&rogue, "rogue", false, "Portico Test", "rogue", NULL, false);
    make_ocsp();

    cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
}

static void
free_pem(struct pem *p)
{
    X509_free(p->x);
    EVP_PKEY_free(p->k);
}

static void
teardown(void)
{
    char cmd[128];

    SSL_CTX_free(cctx);
    free_pem(&ca);
    free_pem(&rsa_a);
    free_pem(&ec_a);
    free_pem(&wild);
    free_pem(&dflt);
    free_pem(&client);
    free_pem(&rogue);
    OPENSSL_free(ocsp_der);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* ---- servers and connections ---- */

static void
cfg_init(struct config_tls *c, struct config_cert *certs, uint32_t n)
{
    memset(c, 0, sizeof(*c));
    c->certs = certs;
    c->ncerts = n;
    c->min_version = 0x0303;
    c->http2 = true;
    c->session_tickets = true;
    c->ticket_rotate_ms = 3600000;
    c->session_cache = 20480;
    c->session_timeout_ms = 3600000;
    c->handshake_timeout_ms = 10000;
}

static struct config_cert
cert_of(const struct pem *p)
{
    return (struct config_cert){.cert = (char *)p->cert, .key = (char *)p->key};
}

static struct tls_server *
server_new(const struct config_tls *c)
{
    char err[512] = "";
    struct tls_server *t = tls_server_new(c, err, sizeof(err));

    if (!t)
        fprintf(stderr, "tls_server_new: %s\n", err);
    return t;
}

struct client_opts {
    const char *sni;
    const char *alpn; /* wire format */
    size_t alpn_len;
    int min_version, max_version; /* 0: the client's defaults */
    const char *sigalgs;
    const char *ciphers;
    SSL_SESSION *session;
    bool want_ocsp;
    const struct pem *cert;
    bool weak; /* security level 0, so the client may even offer TLS 1.1 */
};

struct conn {
    int fd[2];
    SSL *s, *c;
};

/* Drives both handshakes in turn until both finish or one fails. */
static bool
drive(struct conn *k)
{
    bool sdone = false, cdone = false;

    for (int i = 0; i < 100 && !(sdone && cdone); i++) {
        if (!cdone) {
            int r = SSL_do_handshake(k->c);
            int e = r == 1 ? 0 : SSL_get_error(k->c, r);
            if (r == 1)
                cdone = true;
            else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                break;
        }
        if (!sdone) {
            int r = SSL_do_handshake(k->s);
            int e = r == 1 ? 0 : SSL_get_error(k->s, r);
            if (r == 1)
                sdone = true;
            else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                break;
        }
    }
    ERR_clear_error();
    return sdone && cdone;
}

/* Makes the SSLs of a connection to <t> without handshaking. */
static bool
conn_make(struct conn *k, struct tls_server *t, const struct client_opts *o)
{
    static const struct client_opts none;

    if (!o)
        o = &none;
    memset(k, 0, sizeof(*k));
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, k->fd) != 0)
        return false;
    k->s = tls_server_ssl(t, k->fd[0]);
    k->c = SSL_new(cctx);
    if (!k->s || !k->c)
        return false;
    if (o->weak) {
        SSL_set_security_level(k->c, 0);
        SSL_set_cipher_list(k->c, "DEFAULT:@SECLEVEL=0");
    }
    if (o->min_version)
        SSL_set_min_proto_version(k->c, o->min_version);
    if (o->max_version)
        SSL_set_max_proto_version(k->c, o->max_version);
    if (o->sigalgs)
        SSL_set1_sigalgs_list(k->c, o->sigalgs);
    if (o->ciphers)
        SSL_set_cipher_list(k->c, o->ciphers);
    if (o->sni)
        SSL_set_tlsext_host_name(k->c, o->sni);
    if (o->alpn)
        SSL_set_alpn_protos(k->c, (const unsigned char *)o->alpn, (unsigned)o->alpn_len);
    if (o->session)
        SSL_set_session(k->c, o->session);
    if (o->want_ocsp)
        SSL_set_tlsext_status_type(k->c, TLSEXT_STATUSTYPE_ocsp);
    if (o->cert) {
        SSL_use_certificate(k->c, o->cert->x);
        SSL_use_PrivateKey(k->c, o->cert->k);
    }
    SSL_set_fd(k->c, k->fd[1]);
    SSL_set_connect_state(k->c);
    return true;
}

static bool
conn_open(struct conn *k, struct tls_server *t, const struct client_opts *o)
{
    return conn_make(k, t, o) && drive(k);
}

/* Closes like a well-behaved peer: SSL_free without a close_notify sent first would mark the
 * session not resumable (OpenSSL drops it from the cache, and the client stops offering it). */
static void
conn_close(struct conn *k)
{
    if (k->c && SSL_is_init_finished(k->c))
        SSL_shutdown(k->c);
    if (k->s && SSL_is_init_finished(k->s))
        SSL_shutdown(k->s);
    SSL_free(k->s);
    SSL_free(k->c);
    if (k->fd[0] > 0)
        close(k->fd[0]);
    if (k->fd[1] > 0)
        close(k->fd[1]);
    memset(k, 0, sizeof(*k));
    ERR_clear_error();
}

/* Sends <msg> from <from> and reads it at <to>; the client reading also takes in the TLS 1.3
 * session tickets the server sent after its handshake. */
static bool
xfer(SSL *from, SSL *to, const char *msg)
{
    int n = (int)strlen(msg);
    char buf[64];

    if (SSL_write(from, msg, n) != n)
        return false;
    for (int i = 0; i < 50; i++) {
        int r = SSL_read(to, buf, sizeof(buf));
        if (r > 0)
            return r == n && memcmp(buf, msg, (size_t)n) == 0;
        int e = SSL_get_error(to, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            return false;
    }
    return false;
}

static bool
talk(struct conn *k)
{
    return xfer(k->s, k->c, "ping") && xfer(k->c, k->s, "pong");
}

/* The certificate the client got, compared with <p>. */
static bool
served(const struct conn *k, const struct pem *p)
{
    X509 *x = SSL_get0_peer_certificate(k->c);
    return x && X509_cmp(x, p->x) == 0;
}

/* Opens, talks, and returns the client's session for resumption (or NULL). */
static SSL_SESSION *
session_from(struct tls_server *t, const struct client_opts *o, bool *reused)
{
    struct conn k;
    SSL_SESSION *s = NULL;

    if (reused)
        *reused = false;
    if (conn_open(&k, t, o) && talk(&k)) {
        s = SSL_get1_session(k.c);
        if (reused)
            *reused = SSL_session_reused(k.c) && SSL_session_reused(k.s);
    }
    conn_close(&k);
    return s;
}

/* Whether a new connection with <sess> resumed it; the new session goes into *next. */
static bool
resumes(struct tls_server *t, SSL_SESSION *sess, int version, SSL_SESSION **next)
{
    struct client_opts o = {.session = sess, .min_version = version, .max_version = version};
    bool reused = false;
    SSL_SESSION *s = session_from(t, &o, &reused);

    if (next)
        *next = s;
    else
        SSL_SESSION_free(s);
    return reused;
}

/* ---- tests ---- */

/* Fails to build with <c>, expecting an error that starts with <path> then <what>. */
static bool
fails_with(const struct config_tls *c, const char *path, const char *what)
{
    char err[512] = "", want[600];
    struct tls_server *t = tls_server_new(c, err, sizeof(err));

    snprintf(want, sizeof(want), "%s%s", path, what);
    if (t) {
        fprintf(stderr, "unexpected success, wanted \"%s\"\n", want);
        tls_server_free(t);
        return false;
    }
    if (strncmp(err, want, strlen(want)) != 0) {
        fprintf(stderr, "error \"%s\", wanted \"%s\"\n", err, want);
        return false;
    }
    return ERR_peek_error() == 0;
}

static void
test_load_errors(void)
{
    struct config_cert certs[2];
    struct config_tls c;
    char junk[256], missing[256], badchain[256], enc[256];
    FILE *f;

    path_in(junk, sizeof(junk), "junk");
    write_file(junk, "hello\n", 6);
    path_in(missing, sizeof(missing), "missing.pem");
    path_in(badchain, sizeof(badchain), "badchain.pem");
    f = fopen(badchain, "w");
    PEM_write_X509(f, ec_a.x);
    fputs("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", f);
    fclose(f);
    path_in(enc, sizeof(enc), "enc.key");
    f = fopen(enc, "w");
    PEM_write_PrivateKey(f, ec_a.k, EVP_aes_256_cbc(), (unsigned char *)"secret", 6, NULL, NULL);
    fclose(f);

    cfg_init(&c, certs, 1);
    certs[0] = (struct config_cert){.cert = wild.cert, .key = ec_a.key};
    {
        char err[512] = "", want[600];
        CHECK(tls_server_new(&c, err, sizeof(err)) == NULL);
        snprintf(want, sizeof(want), "%s: does not match certificate %s", ec_a.key, wild.cert);
        CHECK(strcmp(err, want) == 0);
    }
    certs[0] = (struct config_cert){.cert = junk, .key = ec_a.key};
    CHECK(fails_with(&c, junk, ": not a PEM certificate"));
    certs[0] = (struct config_cert){.cert = missing, .key = ec_a.key};
    CHECK(fails_with(&c, missing, ": cannot open: No such file or directory"));
    certs[0] = (struct config_cert){.cert = badchain, .key = ec_a.key};
    CHECK(fails_with(&c, badchain, ": certificate 2 of the chain is not valid PEM"));
    certs[0] = (struct config_cert){.cert = ec_a.cert, .key = junk};
    CHECK(fails_with(&c, junk, ": not a PEM private key"));
    certs[0] = (struct config_cert){.cert = ec_a.cert, .key = enc}; /* never prompts */
    CHECK(fails_with(&c, enc, ": not a PEM private key"));
    certs[0] = (struct config_cert){.cert = ec_a.cert, .key = ec_a.key, .ocsp = junk};
    CHECK(fails_with(&c, junk, ": not a DER OCSP response"));
    certs[0] = (struct config_cert){.cert = ec_a.cert, .key = ec_a.key, .ocsp = missing};
    CHECK(fails_with(&c, missing, ": cannot open"));

    /* The second certificate's error, after a good first one. */
    c.ncerts = 2;
    certs[0] = cert_of(&ec_a);
    certs[1] = (struct config_cert){.cert = rsa_a.cert, .key = ec_a.key};
    CHECK(fails_with(&c, ec_a.key, ": does not match certificate "));
    c.ncerts = 1;

    certs[0] = cert_of(&ec_a);
    c.ciphers = "NOPE";
    CHECK(fails_with(&c, "tls: ciphers \"NOPE\"", ""));
    c.ciphers = NULL;
    c.groups = "X25519:nope";
    CHECK(fails_with(&c, "tls: groups", ""));
    c.groups = NULL;
    c.client_auth = TLS_CLIENT_AUTH_REQUIRED;
    CHECK(fails_with(&c, "tls: client_auth needs client_ca", ""));
    c.client_ca = junk;
    CHECK(fails_with(&c, junk, ":"));
    c.client_auth = TLS_CLIENT_AUTH_OFF;
    c.client_ca = NULL;
    c.ncerts = 0;
    CHECK(fails_with(&c, "tls: no certificate", ""));
}

static void
test_sni(void)
{
    struct config_cert certs[4] = {cert_of(&dflt), cert_of(&rsa_a), cert_of(&ec_a), cert_of(&wild)};
    struct config_tls c;
    struct tls_server *t;
    struct conn k;
    static const struct {
        const char *sni;
        const struct pem *want;
    } cases[] = {
        {NULL, &dflt},
        {"default.example.com", &dflt},
        {"x.wild.example.com", &wild},
        {"X.Wild.EXAMPLE.com.", &wild},
        {"y.x.wild.example.com", &dflt}, /* a wildcard matches one label only */
        {"wild.example.com", &dflt},
        {".wild.example.com", &dflt},
        {"unknown.test", &dflt},
        {"b.example.com", &dflt},
    };

    cfg_init(&c, certs, 4);
    t = server_new(&c);
    CHECK(t != NULL);
    if (!t)
        return;
    for (size_t i = 0; i < PT_ARRAY_LEN(cases); i++) {
        struct client_opts o = {.sni = cases[i].sni};
        bool ok = conn_open(&k, t, &o);
        CHECK(ok);
        if (!ok || !served(&k, cases[i].want))
            fprintf(stderr, "SNI case %zu (%s): wrong certificate\n", i, cases[i].sni);
        CHECK(served(&k, cases[i].want));
        conn_close(&k);
    }

    /* RSA and ECDSA for a.example.com share a context: OpenSSL picks by signature algorithms. */
    for (int v = 0; v < 2; v++) {
        int version = v ? TLS1_3_VERSION : TLS1_2_VERSION;
        struct client_opts o = {.sni = "A.example.COM",
                                .sigalgs = "ECDSA+SHA256",
                                .min_version = version,
                                .max_version = version};
        CHECK(conn_open(&k, t, &o) && served(&k, &ec_a));
        /* The chain in the file (leaf, then CA) is sent. */
        CHECK(k.c && sk_X509_num(SSL_get_peer_cert_chain(k.c)) == 2);
        conn_close(&k);
        o.sigalgs = "rsa_pss_rsae_sha256:RSA+SHA256";
        CHECK(conn_open(&k, t, &o) && served(&k, &rsa_a));
        conn_close(&k);
        o.sigalgs = NULL;
        CHECK(conn_open(&k, t, &o) && (served(&k, &ec_a) || served(&k, &rsa_a)));
        conn_close(&k);
    }
    /* A TLS 1.2 client offering only RSA suites gets the RSA certificate. */
    {
        struct client_opts o = {.sni = "a.example.com",
                                .ciphers = "ECDHE-RSA-AES128-GCM-SHA256",
                                .max_version = TLS1_2_VERSION};
        CHECK(conn_open(&k, t, &o) && served(&k, &rsa_a));
        conn_close(&k);
    }
    tls_server_free(t);
}

/* The ALPN the server chose for a client offering <alpn> (wire format), "-" when the
 * handshake failed, "" when none. */
static const char *
alpn_for(struct tls_server *t, const char *alpn, size_t len)
{
    static char out[32];
    struct client_opts o = {.alpn = alpn, .alpn_len = len};
    struct conn k;
    const unsigned char *cp = NULL;
    unsigned int cn = 0;

    strcpy(out, "-");
    if (conn_open(&k, t, &o)) {
        size_t n = 99;
        const char *p = tls_alpn(k.s, &n);
        SSL_get0_alpn_selected(k.c, &cp, &cn);
        if (!p && n == 0 && cn == 0)
            strcpy(out, "");
        else if (p && n == strlen(p) && cn == n && memcmp(cp, p, n) == 0)
            snprintf(out, sizeof(out), "%s", p);
        else
            strcpy(out, "mismatch");
    }
    conn_close(&k);
    return out;
}

#define W(lit) lit, sizeof(lit) - 1

static void
test_alpn(void)
{
    struct config_cert certs[1] = {cert_of(&ec_a)};
    struct config_tls c;
    struct tls_server *t;

    cfg_init(&c, certs, 1);
    t = server_new(&c);
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK(strcmp(alpn_for(t, W("\x02h2\x08http/1.1")), "h2") == 0);
    CHECK(strcmp(alpn_for(t, W("\x08http/1.1\x02h2")), "h2") == 0); /* server's order */
    CHECK(strcmp(alpn_for(t, W("\x08http/1.1")), "http/1.1") == 0);
    CHECK(strcmp(alpn_for(t, W("\x06spdy/3\x08http/1.1")), "http/1.1") == 0);
    CHECK(strcmp(alpn_for(t, NULL, 0), "") == 0);                /* none: HTTP/1.1 */
    CHECK(strcmp(alpn_for(t, W("\x06spdy/3\x03foo")), "") == 0); /* unknown: no ALPN */
    tls_server_free(t);

    c.http2 = false;
    t = server_new(&c);
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK(strcmp(alpn_for(t, W("\x02h2\x08http/1.1")), "http/1.1") == 0);
    CHECK(strcmp(alpn_for(t, W("\x02h2")), "") == 0);
    tls_server_free(t);
}

static void
test_versions(void)
{
    struct config_cert certs[2] = {cert_of(&ec_a), cert_of(&rsa_a)};
    struct config_tls c;
    struct tls_server *t;
    struct conn k;

    cfg_init(&c, certs, 2);
    t = server_new(&c);
    CHECK(t != NULL);
    if (!t)
        return;

    /* TLS 1.1 is refused (the client is weakened so it would offer it at all). */
    {
        struct client_opts o = {.weak = true, .max_version = TLS1_1_VERSION};
        CHECK(!conn_open(&k, t, &o));
        CHECK(k.s && SSL_get_min_proto_version(k.s) == TLS1_2_VERSION);
        CHECK(k.s && SSL_get_max_proto_version(k.s) == 0);
        conn_close(&k);
    }
    /* TLS 1.2: an ECDHE AEAD suite, the server's preference over the client's. */
    {
        struct client_opts o = {.max_version = TLS1_2_VERSION};
        CHECK(conn_open(&k, t, &o));
        const SSL_CIPHER *ci = SSL_get_current_cipher(k.c);
        CHECK(SSL_version(k.c) == TLS1_2_VERSION);
        CHECK(ci && SSL_CIPHER_is_aead(ci) && SSL_CIPHER_get_kx_nid(ci) == NID_kx_ecdhe);
        CHECK(SSL_get_negotiated_group(k.s) == NID_X25519);
        CHECK(SSL_get_secure_renegotiation_support(k.c)); /* ... yet renegotiation is off */
        CHECK(SSL_get_options(k.s) & SSL_OP_NO_RENEGOTIATION);
        CHECK(SSL_get_options(k.s) & SSL_OP_CIPHER_SERVER_PREFERENCE);
        CHECK(SSL_get_options(k.s) & SSL_OP_NO_COMPRESSION);
        CHECK((SSL_get_mode(k.s) & SSL_MODE_RELEASE_BUFFERS) != 0);
        CHECK(talk(&k));
        conn_close(&k);

        o.ciphers = "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256";
        CHECK(conn_open(&k, t, &o));
        ci = SSL_get_current_cipher(k.c);
        CHECK(ci && strcmp(SSL_CIPHER_get_name(ci), "ECDHE-ECDSA-AES128-GCM-SHA256") == 0);
        conn_close(&k);

        o.ciphers = "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA256:AES128-GCM-SHA256";
        CHECK(!conn_open(&k, t, &o)); /* CBC and RSA key exchange are not offered */
        conn_close(&k);
    }
    /* TLS 1.3 by default, X25519. */
    {
        CHECK(conn_open(&k, t, NULL));
        CHECK(SSL_version(k.c) == TLS1_3_VERSION);
        CHECK(SSL_get_negotiated_group(k.s) == NID_X25519);
        conn_close(&k);
    }
    tls_server_free(t);

    /* min_version 0x0304: TLS 1.3 only. */
    c.min_version = 0x0304;
    c.ciphersuites = "TLS_CHACHA20_POLY1305_SHA256";
    c.groups = "P-256";
    t = server_new(&c);
    CHECK(t != NULL);
    if (!t)
        return;
    {
        struct client_opts o = {.max_version = TLS1_2_VERSION};
        CHECK(!conn_open(&k, t, &o));
        conn_close(&k);
        CHECK(conn_open(&k, t, NULL));
        const SSL_CIPHER *ci = SSL_get_current_cipher(k.c);
        CHECK(ci && strcmp(SSL_CIPHER_get_name(ci), "TLS_CHACHA20_POLY1305_SHA256") == 0);
        CHECK(SSL_get_negotiated_group(k.s) == NID_X9_62_prime256v1);
        conn_close(&k);
    }
    tls_server_free(t);
}

static void
test_tickets(void)
{
    struct config_cert certs[2] = {cert_of(&ec_a), cert_of(&wild)};
    struct config_tls c;
    struct tls_server *t;

    cfg_init(&c, certs, 2);
    c.session_cache = 0; /* tickets alone: no fallback to a cached session id */
    t = server_new(&c);
    CHECK(t != NULL);
    if (!t)
        return;
    for (int v = 0; v < 2; v++) {
        int version = v ? TLS1_3_VERSION : TLS1_2_VERSION;
        struct client_opts o = {.min_version = version, .max_version = version};
        SSL_SESSION *first = session_from(t, &o, NULL), *renewed = NULL;

        CHECK(first != NULL && SSL_SESSION_has_ticket(first));
        CHECK(resumes(t, first, version, NULL));
        tls_server_rotate_tickets(t);
        CHECK(resumes(t, first, version, &renewed)); /* the previous key still decrypts */
        CHECK(renewed && SSL_SESSION_has_ticket(renewed));
        tls_server_rotate_tickets(t);
        CHECK(!resumes(t, first, version, NULL));  /* two rotations: gone */
        CHECK(resumes(t, renewed, version, NULL)); /* the renewed ticket is under a newer key */
        SSL_SESSION_free(first);
        SSL_SESSION_free(renewed);

        /* A session resumes under another SNI context of the same server. */
        struct client_opts w = {
            .sni = "x.wild.example.com", .min_version = version, .max_version = version};
        SSL_SESSION *ws = session_from(t, &w, NULL);
        w.session = ws;
        bool reused = false;
        SSL_SESSION *again = session_from(t, &w, &reused);
        CHECK(ws && reused);
        SSL_SESSION_free(again);
        SSL_SESSION_free(ws);
    }
    tls_server_free(t);

    /* A ticket from another server (other keys) is no error, just a full handshake. */
    {
        struct tls_server *a = server_new(&c), *b = server_new(&c);
        CHECK(a && b);
        if (a && b) {
            SSL_SESSION *s = session_from(a, NULL, NULL);
            CHECK(s != NULL);
            CHECK(!resumes(b, s, 0, NULL));
            CHECK(resumes(a, s, 0, NULL));
            SSL_SESSION_free(s);
        }
        tls_server_free(a);
        tls_server_free(b);
    }
}

static void
test_ticket_timer(void)
{
    struct config_cert certs[1] = {cert_of(&ec_a)};
    struct config_tls c;
    struct tls_server *t;
    struct timespec pause = {.tv_sec = 0, .tv_nsec = 150 * 1000000};
    SSL_SESSION *first, *later;

    cfg_init(&c, certs, 1);
    c.session_cache = 0;
    c.ticket_rotate_ms = 100;
    t = server_new(&c);
    CHECK(t != NULL);
    if (!t)
        return;
    first = session_from(t, NULL, NULL);
    tls_server_tick(t); /* not due yet */
    tls_server_tick(t);
    CHECK(resumes(t, first, 0, NULL));
    nanosleep(&pause, NULL);
    tls_server_tick(t); /* one rotation */
    tls_server_tick(t); /* not due again */
    CHECK(resumes(t, first, 0, NULL));
    later = session_from(t, NULL, NULL);
    nanosleep(&pause, NULL);
    tls_server_tick(t);
    CHECK(!resumes(t, first, 0, NULL));
    CHECK(resumes(t, later, 0, NULL));
    SSL_SESSION_free(first);
    SSL_SESSION_free(later);
    tls_server_free(t);

    /* Tickets off: ticking does nothing and costs nothing. */
    c.session_tickets = false;
    t = server_new(&c);
    CHECK(t != NULL);
    tls_server_tick(t);
    tls_server_free(t);
}

static void
test_session_cache(void)
{
    struct config_cert certs[1] = {cert_of(&ec_a)};
    struct config_tls c;
    struct tls_server *t;

    cfg_init(&c, certs, 1);
    c.session_tickets = false;
    t = server_new(&c);
    CHECK(t != NULL);
    if (!t)
        return;
    for (int v = 0; v < 2; v++) {
        int version = v ? TLS1_3_VERSION : TLS1_2_VERSION;
        struct client_opts o = {.min_version = version, .max_version = version};
        SSL_SESSION *s = session_from(t, &o, NULL);
        CHECK(s != NULL);
        if (version == TLS1_2_VERSION)
            CHECK(s && !SSL_SESSION_has_ticket(s)); /* a session id, no ticket */
        CHECK(resumes(t, s, version, NULL));
        tls_server_rotate_tickets(t); /* tickets play no part */
        tls_server_rotate_tickets(t);
        CHECK(resumes(t, s, version, NULL));
        SSL_SESSION_free(s);
    }
    tls_server_free(t);

    /* No cache and no tickets: no resumption. */
    c.session_cache = 0;
    t = server_new(&c);
    CHECK(t != NULL);
    if (!t)
        return;
    for (int v = 0; v < 2; v++) {
        int version = v ? TLS1_3_VERSION : TLS1_2_VERSION;
        struct client_opts o = {.min_version = version, .max_version = version};
        SSL_SESSION *s = session_from(t, &o, NULL);
        CHECK(!s || !resumes(t, s, version, NULL));
        SSL_SESSION_free(s);
    }
    tls_server_free(t);
}

static void
copy_file(const char *from, const char *to)
{
    char buf[16384];
    FILE *f = fopen(from, "rb");
    size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;

    if (f)
        fclose(f);
    write_file(to, buf, n);
}

static void
test_reload(void)
{
    char cert[256], key[256], err[512];
    struct config_cert certs[1];
    struct config_tls c;
    struct tls_server *t;
    struct conn live, before, k;

    path_in(cert, sizeof(cert), "reload.pem");
    path_in(key, sizeof(key), "reload.key");
    copy_file(ec_a.cert, cert);
    copy_file(ec_a.key, key);
    certs[0] = (struct config_cert){.cert = cert, .key = key};
    cfg_init(&c, certs, 1);
    t = server_new(&c);
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK(conn_open(&live, t, NULL) && served(&live, &ec_a));
    CHECK(conn_make(&before, t, NULL)); /* made before the reloads, handshaken after */

    /* A broken key: the old certificate stays, the error names the file. */
    write_file(key, "-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n", 61);
    err[0] = '\0';
    CHECK(tls_server_reload(t, err, sizeof(err)) == PT_ERR);
    CHECK(strncmp(err, key, strlen(key)) == 0 && strstr(err, "not a PEM private key"));
    CHECK(conn_open(&k, t, NULL) && served(&k, &ec_a));
    conn_close(&k);

    /* A key of another certificate: same, naming both files. */
    copy_file(wild.key, key);
    CHECK(tls_server_reload(t, err, sizeof(err)) == PT_ERR);
    CHECK(strncmp(err, key, strlen(key)) == 0 && strstr(err, "does not match certificate"));

    /* A new pair: new handshakes get it; connections made before keep theirs. */
    copy_file(wild.cert, cert);
    CHECK(tls_server_reload(t, err, sizeof(err)) == PT_OK);
    CHECK(conn_open(&k, t, NULL) && served(&k, &wild));
    conn_close(&k);
    CHECK(drive(&before) && served(&before, &ec_a));
    CHECK(talk(&before));
    conn_close(&before);
    CHECK(talk(&live));
    conn_close(&live);

    /* Several reloads while an SSL of each set is alive: each set lives until its last SSL. */
    struct conn held[3];
    for (int i = 0; i < 3; i++) {
        CHECK(conn_make(&held[i], t, NULL));
        CHECK(tls_server_reload(t, err, sizeof(err)) == PT_OK);
    }
    for (int i = 2; i >= 0; i--) {
        CHECK(drive(&held[i]) && served(&held[i], &wild) && talk(&held[i]));
        conn_close(&held[i]);
    }
    tls_server_free(t);
}

static void
test_client_auth(void)
{
    struct config_cert certs[1] = {cert_of(&ec_a)};
    struct config_tls c;
    struct tls_server *t;
    struct conn k;
    char subj[256];

    cfg_init(&c, certs, 1);
    c.client_ca = ca.cert;
    c.client_auth = TLS_CLIENT_AUTH_REQUIRED;
    t = server_new(&c);
    CHECK(t != NULL);
    if (!t)
        return;
    for (int v = 0; v < 2; v++) {
        int version = v ? TLS1_3_VERSION : TLS1_2_VERSION;
        struct client_opts o = {.min_version = version, .max_version = version};
        CHECK(!conn_open(&k, t, &o)); /* no certificate */
        conn_close(&k);
        o.cert = &rogue;
        CHECK(!conn_open(&k, t, &o)); /* not signed by the CA */
        conn_close(&k);
        o.cert = &client;
        CHECK(conn_open(&k, t, &o) && talk(&k));
        CHECK_EQ_INT(tls_client_subject(k.s, subj, sizeof(subj)),
                     strlen("CN=client,O=Portico Test"));
        CHECK(strcmp(subj, "CN=client,O=Portico Test") == 0);
        CHECK_EQ_INT(tls_client_subject(k.s, subj, 7), 6); /* truncated, terminated */
        CHECK(strcmp(subj, "CN=cli") == 0);
        conn_close(&k);
    }
    tls_server_free(t);

    c.client_auth = TLS_CLIENT_AUTH_OPTIONAL;
    t = server_new(&c);
    CHECK(t != NULL);
    if (!t)
        return;
    for (int v = 0; v < 2; v++) {
        int version = v ? TLS1_3_VERSION : TLS1_2_VERSION;
        struct client_opts o = {.min_version = version, .max_version = version};
        SSL_SESSION *s;
        CHECK(conn_open(&k, t, &o) && talk(&k));
        strcpy(subj, "x");
        CHECK_EQ_INT(tls_client_subject(k.s, subj, sizeof(subj)), 0);
        CHECK(subj[0] == '\0');
        conn_close(&k);

        o.cert = &rogue; /* let through, but no subject */
        CHECK(conn_open(&k, t, &o) && talk(&k));
        CHECK(SSL_get0_peer_certificate(k.s) != NULL);
        CHECK_EQ_INT(tls_client_subject(k.s, subj, sizeof(subj)), 0);
        s = SSL_get1_session(k.c);
        conn_close(&k);
        /* Nor after resuming that session. */
        o.session = s;
        CHECK(conn_make(&k, t, &o) && drive(&k) && talk(&k) && SSL_session_reused(k.s));
        CHECK_EQ_INT(tls_client_subject(k.s, subj, sizeof(subj)), 0);
        conn_close(&k);
        SSL_SESSION_free(s);

        o.session = NULL;
        o.cert = &client;
        CHECK(conn_open(&k, t, &o) && talk(&k));
        CHECK(tls_client_subject(k.s, subj, sizeof(subj)) > 0);
        CHECK(strcmp(subj, "CN=client,O=Portico Test") == 0);
        s = SSL_get1_session(k.c);
        conn_close(&k);
        /* A resumed session keeps its verified subject. */
        o.session = s;
        o.cert = NULL;
        CHECK(conn_make(&k, t, &o) && drive(&k) && talk(&k) && SSL_session_reused(k.s));
        CHECK(tls_client_subject(k.s, subj, sizeof(subj)) > 0);
        CHECK(strcmp(subj, "CN=client,O=Portico Test") == 0);
        conn_close(&k);
        SSL_SESSION_free(s);
    }
    tls_server_free(t);

    /* Off: no certificate is asked for, so none is reported. */
    c.client_auth = TLS_CLIENT_AUTH_OFF;
    t = server_new(&c);
    CHECK(t != NULL);
    if (!t)
        return;
    {
        struct client_opts o = {.cert = &client};
        CHECK(conn_open(&k, t, &o));
        CHECK(SSL_get0_peer_certificate(k.s) == NULL);
        CHECK_EQ_INT(tls_client_subject(k.s, subj, sizeof(subj)), 0);
        conn_close(&k);
    }
    tls_server_free(t);
}

/* The stapled response the client got: its length, or -1 for none. */
static long
staple_len(struct tls_server *t, const struct client_opts *o, bool *same)
{
    struct conn k;
    const unsigned char *p = NULL;
    long n = -2;

    *same = false;
    if (conn_open(&k, t, o)) {
        n = SSL_get_tlsext_status_ocsp_resp(k.c, &p);
        *same = n == ocsp_len && p && memcmp(p, ocsp_der, (size_t)n) == 0;
    }
    conn_close(&k);
    return n;
}

static void
test_ocsp(void)
{
    struct config_cert certs[2] = {cert_of(&rsa_a), cert_of(&ec_a)};
    struct config_tls c;
    struct tls_server *t;
    bool same;

    certs[1].ocsp = ocsp_path; /* only the ECDSA certificate has a response */
    cfg_init(&c, certs, 2);
    t = server_new(&c);
    CHECK(t != NULL);
    if (!t)
        return;
    for (int v = 0; v < 2; v++) {
        int version = v ? TLS1_3_VERSION : TLS1_2_VERSION;
        struct client_opts o = {.want_ocsp = true,
                                .sigalgs = "ECDSA+SHA256",
                                .min_version = version,
                                .max_version = version};
        CHECK_EQ_INT(staple_len(t, &o, &same), ocsp_len);
        CHECK(same);
        o.sigalgs = "rsa_pss_rsae_sha256:RSA+SHA256"; /* the RSA certificate: nothing to staple */
        CHECK_EQ_INT(staple_len(t, &o, &same), -1);
        o.sigalgs = "ECDSA+SHA256";
        o.want_ocsp = false; /* not asked for */
        CHECK_EQ_INT(staple_len(t, &o, &same), -1);
    }
    tls_server_free(t);
}

/* Workers handshaking (with resumption) while the main thread rotates keys and reloads. */
struct worker_arg {
    struct tls_server *t;
    int ok, resumed;
};

static void *
worker_main(void *p)
{
    struct worker_arg *w = p;
    SSL_SESSION *s = NULL;

    for (int i = 0; i < 40; i++) {
        struct client_opts o = {.session = s, .sni = i % 2 ? "x.wild.example.com" : NULL};
        bool reused = false;
        SSL_SESSION *next = session_from(w->t, &o, &reused);
        if (next) {
            w->ok++;
            w->resumed += reused;
            SSL_SESSION_free(s);
            s = next;
        }
    }
    SSL_SESSION_free(s);
    return NULL;
}

static void
test_concurrent(void)
{
    struct config_cert certs[2] = {cert_of(&ec_a), cert_of(&wild)};
    struct config_tls c;
    struct tls_server *t;
    struct worker_arg w[4];
    pthread_t th[4];
    char err[512];
    int resumed = 0;

    cfg_init(&c, certs, 2);
    t = server_new(&c);
    CHECK(t != NULL);
    if (!t)
        return;
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker_arg){.t = t};
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    for (int i = 0; i < 20; i++) {
        tls_server_rotate_tickets(t);
        tls_server_tick(t);
        CHECK(tls_server_reload(t, err, sizeof(err)) == PT_OK);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(w[i].ok, 40);
        resumed += w[i].resumed;
    }
    CHECK(resumed > 0);
    tls_server_free(t);
}

static void
test_error_string(void)
{
    char out[512];

    ERR_clear_error();
    CHECK(strcmp(tls_error_string(out, sizeof(out)), "no OpenSSL error recorded") == 0);
    CHECK(SSL_CTX_new(NULL) == NULL);
    CHECK(SSL_CTX_set_cipher_list(cctx, "NOPE") == 0);
    tls_error_string(out, sizeof(out));
    CHECK(strchr(out, ';') != NULL); /* two errors, one line */
    CHECK(strchr(out, '\n') == NULL);
    CHECK(ERR_peek_error() == 0);
    CHECK(SSL_CTX_set_cipher_list(cctx, "NOPE") == 0);
    tls_error_string(out, 8); /* truncated, still drains */
    CHECK(strlen(out) == 7 && ERR_peek_error() == 0);
}

int
main(void)
{
    setup();
    RUN(test_load_errors);
    RUN(test_sni);
    RUN(test_alpn);
    RUN(test_versions);
    RUN(test_tickets);
    RUN(test_ticket_timer);
    RUN(test_session_cache);
    RUN(test_reload);
    RUN(test_client_auth);
    RUN(test_ocsp);
    RUN(test_concurrent);
    RUN(test_error_string);
    teardown();
    TEST_MAIN_END();
}
