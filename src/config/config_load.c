/* The YAML loader: reads a file or string with libyaml's document API, checks it against the
 * schema in docs/configuration.md, and builds a config snapshot. Every error is reported as
 * "file:line:col: message" (1-based, from libyaml's marks) and frees everything built so far.
 * It does not open sockets or log files: that is the caller's work once the snapshot is valid. */
#include "config/config.h"
#include "config/config_int.h"
#include "core/log.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <yaml.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_CONFIG_BYTES (64u << 20)
#define MAX_WORKERS      1024

/* http2: bounds. The window may go up to 2^31-1 in HTTP/2; 16 MiB per stream is plenty. */
#define H2_MAX_STREAMS 10000
#define H2_WINDOW_MIN  65535
#define H2_WINDOW_MAX  (16u << 20)
#define H2_MAX_RESETS  100000

/* A key of a mapping with a fixed set of keys, once fields() has sorted them. */
struct field {
    yaml_node_t *key; /* NULL when the key is absent */
    yaml_node_t *val;
};

struct ld {
    const char *name; /* file name in messages */
    char *dir;        /* directory of the file, for relative paths; NULL: the working directory */
    yaml_document_t *doc;
    struct config *c;
    char *err;
    size_t errlen;
};

/* ---- error reporting and node access ---- */

static int fail(struct ld *ld, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(struct ld *ld, const yaml_node_t *n, const char *fmt, ...)
{
    va_list ap;
    size_t line = n ? n->start_mark.line + 1 : 1, col = n ? n->start_mark.column + 1 : 1;
    int k;

    if (!ld->err || ld->errlen == 0)
        return PT_ERR;
    k = snprintf(ld->err, ld->errlen, "%s:%zu:%zu: ", ld->name, line, col);
    if (k >= 0 && (size_t)k < ld->errlen) {
        va_start(ap, fmt);
        vsnprintf(ld->err + k, ld->errlen - (size_t)k, fmt, ap);
        va_end(ap);
    }
    return PT_ERR;
}

static yaml_node_t *
node(struct ld *ld, int id)
{
    return yaml_document_get_node(ld->doc, id);
}

static const char *
sval(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static bool
is_null(const yaml_node_t *n)
{
    const char *v;

    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    v = sval(n);
    return !*v || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
           strcmp(v, "NULL") == 0;
}

static const char *
kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE: return "a mapping";
    case YAML_SEQUENCE_NODE: return "a list";
    case YAML_SCALAR_NODE: return is_null(n) ? "nothing" : "a string";
    default: return "nothing";
    }
}

static size_t
seq_len(const yaml_node_t *n)
{
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

static yaml_node_t *
seq_at(struct ld *ld, const yaml_node_t *n, size_t i)
{
    return node(ld, n->data.sequence.items.start[i]);
}

static size_t
map_len(const yaml_node_t *n)
{
    return (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
}

/* Formats a name for messages; a name cut short by <n> is still good enough for that. */
static const char *pathf(char *buf, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static const char *
pathf(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    return buf;
}

/* Joins <where> and <key> into "where.key" (or "key" at the top level). */
static const char *
sub(char *buf, size_t n, const char *where, const char *key)
{
    if (*where)
        return pathf(buf, n, "%s.%s", where, key);
    return pathf(buf, n, "%s", key);
}

static bool
has_ctl(const char *s, bool allow_space)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f || (!allow_space && (ch == ' ' || ch == '\t')))
            return true;
    }
    return false;
}

static void
lowercase(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s |= 0x20;
}

/* ---- typed scalars ---- */

static int
want_str(struct ld *ld, yaml_node_t *n, const char *what, const char **out)
{
    if (n->type != YAML_SCALAR_NODE || is_null(n))
        return fail(ld, n, "%s: expected a string, got %s", what, kind(n));
    if (strlen(sval(n)) != n->data.scalar.length)
        return fail(ld, n, "%s: NUL byte in value", what);
    *out = sval(n);
    return PT_OK;
}

static int
want_uint(struct ld *ld, yaml_node_t *n, const char *what, uint64_t min, uint64_t max,
          uint64_t *out)
{
    const char *s = NULL;
    uint64_t v = 0;

    if (want_str(ld, n, what, &s) != PT_OK)
        return PT_ERR;
    if (!*s)
        goto bad;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            goto bad;
        if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            goto range;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v < min || v > max)
        goto range;
    *out = v;
    return PT_OK;
bad:
    return fail(ld, n, "%s: expected an integer, got \"%s\"", what, s);
range:
    return fail(ld, n, "%s: %s is out of range (%llu..%llu)", what, s, (unsigned long long)min,
                (unsigned long long)max);
}

static int
want_u32(struct ld *ld, yaml_node_t *n, const char *what, uint32_t min, uint32_t max, uint32_t *out)
{
    uint64_t v;

    if (want_uint(ld, n, what, min, max, &v) != PT_OK)
        return PT_ERR;
    *out = (uint32_t)v;
    return PT_OK;
}

static int
want_bool(struct ld *ld, yaml_node_t *n, const char *what, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    const char *s = NULL;

    if (want_str(ld, n, what, &s) != PT_OK)
        return PT_ERR;
    for (size_t i = 0; i < PT_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return PT_OK;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return PT_OK;
        }
    }
    return fail(ld, n, "%s: expected true or false, got \"%s\"", what, s);
}

/* A plain scalar that is a YAML-ish boolean word (true/false, yes/no, on/off, any case). */
static bool
switch_word(const yaml_node_t *n, bool *on)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};

    if (n->type != YAML_SCALAR_NODE || is_null(n))
        return false;
    for (size_t i = 0; i < PT_ARRAY_LEN(yes); i++) {
        if (strcasecmp(sval(n), yes[i]) == 0) {
            *on = true;
            return true;
        }
        if (strcasecmp(sval(n), no[i]) == 0) {
            *on = false;
            return true;
        }
    }
    return false;
}

static int
want_duration(struct ld *ld, yaml_node_t *n, const char *what, bool zero_ok, uint32_t *ms)
{
    char why[192];
    const char *s = NULL;

    if (want_str(ld, n, what, &s) != PT_OK)
        return PT_ERR;
    if (config_parse_duration(s, ms, why, sizeof(why)) != PT_OK)
        return fail(ld, n, "%s: %s", what, why);
    if (*ms == 0 && !zero_ok)
        return fail(ld, n, "%s: must be greater than 0", what);
    return PT_OK;
}

static int
want_size(struct ld *ld, yaml_node_t *n, const char *what, uint64_t min, uint64_t max,
          uint64_t *out)
{
    char why[192];
    const char *s = NULL;

    if (want_str(ld, n, what, &s) != PT_OK)
        return PT_ERR;
    if (config_parse_size(s, out, why, sizeof(why)) != PT_OK)
        return fail(ld, n, "%s: %s", what, why);
    if (*out < min || *out > max)
        return fail(ld, n, "%s: %s is out of range (%llu..%llu bytes)", what, s,
                    (unsigned long long)min, (unsigned long long)max);
    return PT_OK;
}

/* A header field name: a token, stored lowercase when <lower>. */
static int
want_field_name(struct ld *ld, yaml_node_t *n, const char *what, bool lower, char **out)
{
    const char *s = NULL;

    if (want_str(ld, n, what, &s) != PT_OK)
        return PT_ERR;
    if (!config_is_token(s))
        return fail(ld, n, "%s: \"%s\" is not a valid header name", what, s);
    *out = pt_strdup(s);
    if (lower)
        lowercase(*out);
    return PT_OK;
}

/* ---- mappings ---- */

/* Checks that <n> is a mapping whose keys are strings, each at most once (case-insensitive when
 * <nocase>). */
static int
check_dups(struct ld *ld, yaml_node_t *n, const char *what, const char *dupword, bool nocase)
{
    yaml_node_pair_t *p0 = n->data.mapping.pairs.start, *top = n->data.mapping.pairs.top;

    for (yaml_node_pair_t *p = p0; p < top; p++) {
        yaml_node_t *k = node(ld, p->key);
        if (k->type != YAML_SCALAR_NODE || is_null(k))
            return fail(ld, k, "%s: keys must be strings, got %s", what, kind(k));
        for (yaml_node_pair_t *q = p0; q < p; q++) {
            yaml_node_t *k2 = node(ld, q->key);
            if (nocase ? strcasecmp(sval(k), sval(k2)) == 0 : strcmp(sval(k), sval(k2)) == 0)
                return fail(ld, k, "%s: duplicate %s \"%s\" (first at %zu:%zu)", what, dupword,
                            sval(k), k2->start_mark.line + 1, k2->start_mark.column + 1);
        }
    }
    return PT_OK;
}

static int
want_map(struct ld *ld, yaml_node_t *n, const char *what)
{
    if (n->type != YAML_MAPPING_NODE)
        return fail(ld, n, "%s: expected a mapping, got %s", what, kind(n));
    return PT_OK;
}

/* Checks that <n> is a mapping with keys from <keys> only, each at most once, and fills f[i]
 * with the key and value nodes of keys[i] (NULLs when absent). <where> names the mapping in
 * messages ("" for the top level). */
static int
fields(struct ld *ld, yaml_node_t *n, const char *where, const char *const *keys, size_t nkeys,
       struct field *f)
{
    const char *what = *where ? where : "configuration";

    memset(f, 0, nkeys * sizeof(*f));
    if (want_map(ld, n, what) != PT_OK || check_dups(ld, n, what, "key", false) != PT_OK)
        return PT_ERR;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(ld, p->key);
        size_t i;

        for (i = 0; i < nkeys; i++)
            if (strcmp(sval(k), keys[i]) == 0)
                break;
        if (i == nkeys) {
            const char *hint = config_suggest(sval(k), keys, nkeys);
            char in[200];

            if (*where)
                pathf(in, sizeof(in), " in %s", where);
            else
                in[0] = '\0';
            if (hint)
                return fail(ld, k, "unknown key \"%s\"%s, did you mean \"%s\"?", sval(k), in, hint);
            return fail(ld, k, "unknown key \"%s\"%s", sval(k), in);
        }
        f[i].key = k;
        f[i].val = node(ld, p->value);
    }
    return PT_OK;
}

/* ---- top-level sections ---- */

static int
load_workers(struct ld *ld, yaml_node_t *n)
{
    uint64_t v;

    if (n->type == YAML_SCALAR_NODE && strcmp(sval(n), "auto") == 0) {
        ld->c->workers = 0;
        return PT_OK;
    }
    if (n->type == YAML_SCALAR_NODE && !is_null(n) && (sval(n)[0] < '0' || sval(n)[0] > '9'))
        return fail(ld, n, "workers: expected an integer or \"auto\", got \"%s\"", sval(n));
    if (want_uint(ld, n, "workers", 1, MAX_WORKERS, &v) != PT_OK)
        return PT_ERR;
    ld->c->workers = (uint32_t)v;
    return PT_OK;
}

static bool
addr_same(const struct config_addr *a, const struct config_addr *b)
{
    return a->salen == b->salen && memcmp(&a->sa, &b->sa, a->salen) == 0;
}

/* managed_field() is with the header rules below. */
static bool managed_field(const char *lower);

/* Resolves a path of the file against its directory (absolute paths and files read from
 * standard input or a string without a directory stay as written). */
static char *
resolve_path(struct ld *ld, const char *path)
{
    size_t dl, pl;
    char *out;

    if (path[0] == '/' || !ld->dir)
        return pt_strdup(path);
    dl = strlen(ld->dir);
    pl = strlen(path);
    if (dl && ld->dir[dl - 1] == '/')
        dl--; /* the file is in "/" */
    out = pt_malloc(dl + 1 + pl + 1);
    memcpy(out, ld->dir, dl);
    out[dl] = '/';
    memcpy(out + dl + 1, path, pl + 1);
    return out;
}

/* A file that must exist and be readable when the configuration is loaded: checked by opening
 * it (not parsed; the TLS module reads it at start). *out gets the resolved path. */
static int
want_file(struct ld *ld, yaml_node_t *n, const char *what, char **out)
{
    char why[128];
    const char *s = NULL;
    char *path;

    if (want_str(ld, n, what, &s) != PT_OK)
        return PT_ERR;
    if (!*s || has_ctl(s, true))
        return fail(ld, n, "%s: expected a file path", what);
    path = resolve_path(ld, s);
    if (config_file_check(path, why, sizeof(why)) != PT_OK) {
        int rc;
        if (strcmp(path, s) != 0)
            rc = fail(ld, n, "%s: cannot read \"%s\" (%s): %s", what, s, path, why);
        else
            rc = fail(ld, n, "%s: cannot read \"%s\": %s", what, s, why);
        free(path);
        return rc;
    }
    *out = path;
    return PT_OK;
}

/* One certificate: {cert, key, ocsp}, or the same keys found directly in tls (f has them). */
static int
load_cert_fields(struct ld *ld, yaml_node_t *at, const char *where, const struct field f[3],
                 struct config_cert *cert)
{
    static const char *const names[] = {"cert", "key", "ocsp"};
    char what[240];
    char **dst[] = {&cert->cert, &cert->key, &cert->ocsp};

    for (int k = 0; k < 2; k++)
        if (!f[k].val)
            return fail(ld, at, "%s: missing required key \"%s\"%s", where, names[k],
                        k == 0 ? " (the certificate file)" : " (the private key file)");
    for (int k = 0; k < 3; k++)
        if (f[k].val &&
            want_file(ld, f[k].val, sub(what, sizeof(what), where, names[k]), dst[k]) != PT_OK)
            return PT_ERR;
    /* for errors in the files' contents, found when TLS loads them */
    snprintf(what, sizeof(what), "%s:%zu:%zu", ld->name, (size_t)at->start_mark.line + 1,
             (size_t)at->start_mark.column + 1);
    cert->where = pt_strdup(what);
    return PT_OK;
}

static int
load_certificates(struct ld *ld, yaml_node_t *n, const char *twhere, struct config_tls *t)
{
    static const char *const keys[] = {"cert", "key", "ocsp"};
    bool list = n->type == YAML_SEQUENCE_NODE;
    size_t count = list ? seq_len(n) : 1;
    char where[240];

    sub(where, sizeof(where), twhere, "certificates");
    if (!list && n->type != YAML_MAPPING_NODE)
        return fail(ld, n, "%s: expected a list of {cert: FILE, key: FILE}, got %s", where,
                    kind(n));
    if (count == 0)
        return fail(ld, n, "%s: needs at least one certificate", where);
    t->certs = pt_calloc(count, sizeof(*t->certs));
    t->ncerts = (uint32_t)count;
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *it = list ? seq_at(ld, n, i) : n;
        struct field f[3];
        char iwhere[260];

        pathf(iwhere, sizeof(iwhere), "%s[%zu]", where, i);
        if (fields(ld, it, iwhere, keys, 3, f) != PT_OK ||
            load_cert_fields(ld, it, iwhere, f, &t->certs[i]) != PT_OK)
            return PT_ERR;
    }
    return PT_OK;
}

static int
load_min_version(struct ld *ld, yaml_node_t *n, const char *what, uint16_t *out)
{
    static const char *const old[] = {"1",       "1.0",    "1.1",    "tlsv1", "tlsv1.0",
                                      "tlsv1.1", "tls1.0", "tls1.1", "sslv3", "3.0"};
    const char *s = NULL, *v;

    if (want_str(ld, n, what, &s) != PT_OK)
        return PT_ERR;
    v = strncasecmp(s, "TLSv", 4) == 0 ? s + 4 : s;
    if (strcmp(v, "1.2") == 0) {
        *out = 0x0303;
        return PT_OK;
    }
    if (strcmp(v, "1.3") == 0) {
        *out = 0x0304;
        return PT_OK;
    }
    for (size_t i = 0; i < PT_ARRAY_LEN(old); i++)
        if (strcasecmp(s, old[i]) == 0)
            return fail(ld, n,
                        "%s: \"%s\": TLS 1.0 and 1.1 (and SSL) are not supported, they are "
                        "insecure (expected 1.2 or 1.3)",
                        what, s);
    return fail(ld, n, "%s: expected 1.2 or 1.3, got \"%s\"", what, s);
}

/* An OpenSSL list (ciphers, ciphersuites, groups), kept as written. */
static int
want_list_string(struct ld *ld, yaml_node_t *n, const char *what, char **out)
{
    const char *s = NULL;

    if (want_str(ld, n, what, &s) != PT_OK)
        return PT_ERR;
    if (!*s || has_ctl(s, true))
        return fail(ld, n, "%s: expected a non-empty list like \"%s\"", what, "X25519:P-256");
    *out = pt_strdup(s);
    return PT_OK;
}

static int
load_client_auth(struct ld *ld, yaml_node_t *n, const char *what, enum tls_client_auth *out)
{
    static const char *const names[] = {"off", "optional", "required"};
    const char *s = NULL, *hint;
    bool on;

    if (switch_word(n, &on) && !on) {
        *out = TLS_CLIENT_AUTH_OFF;
        return PT_OK;
    }
    if (want_str(ld, n, what, &s) != PT_OK)
        return PT_ERR;
    for (size_t i = 0; i < PT_ARRAY_LEN(names); i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum tls_client_auth)i;
            return PT_OK;
        }
    }
    hint = config_suggest(s, names, PT_ARRAY_LEN(names));
    if (hint)
        return fail(ld, n, "%s: unknown mode \"%s\", did you mean \"%s\"?", what, s, hint);
    return fail(ld, n, "%s: expected off, optional or required, got \"%s\"", what, s);
}

static int
load_hsts(struct ld *ld, yaml_node_t *n, const char *what, char **out)
{
    const char *s = NULL;
    bool on;

    if (switch_word(n, &on)) {
        if (on)
            *out = pt_strdup("max-age=31536000");
        return PT_OK;
    }
    if (want_str(ld, n, what, &s) != PT_OK)
        return PT_ERR;
    if (!strcasestr(s, "max-age=") || has_ctl(s, true))
        return fail(ld, n,
                    "%s: expected true or a Strict-Transport-Security value like "
                    "\"max-age=63072000; includeSubDomains\", got \"%s\"",
                    what, s);
    *out = pt_strdup(s);
    return PT_OK;
}

/* The tls: mapping of a listen entry; <where> is "listen[i].tls" or "listen.tls". */
static int
load_tls(struct ld *ld, yaml_node_t *n, const char *where, struct config_tls *t)
{
    enum {
        CERT, /* CERT, KEY, OCSP first and in this order: load_cert_fields reads f[0..2] */
        KEY,
        OCSP,
        CERTIFICATES,
        MIN_VERSION,
        CIPHERS,
        CIPHERSUITES,
        GROUPS,
        HTTP2,
        SESSION_TICKETS,
        TICKET_ROTATION,
        SESSION_CACHE,
        SESSION_TIMEOUT,
        HANDSHAKE_TIMEOUT,
        CLIENT_AUTH,
        CLIENT_CA,
        CLIENT_SUBJECT_HEADER,
        HSTS,
        NKEYS
    };
    static const char *const keys[] = {"cert",
                                       "key",
                                       "ocsp",
                                       "certificates",
                                       "min_version",
                                       "ciphers",
                                       "ciphersuites",
                                       "groups",
                                       "http2",
                                       "session_tickets",
                                       "ticket_rotation",
                                       "session_cache",
                                       "session_timeout",
                                       "handshake_timeout",
                                       "client_auth",
                                       "client_ca",
                                       "client_subject_header",
                                       "hsts"};
    struct field f[NKEYS];
    char what[240];

    config_tls_defaults(t);
    if (n->type != YAML_MAPPING_NODE)
        return fail(ld, n, "%s: expected a mapping with certificates (or cert and key), got %s",
                    where, kind(n));
    if (fields(ld, n, where, keys, NKEYS, f) != PT_OK)
        return PT_ERR;

    if (f[CERTIFICATES].val) {
        for (int k = CERT; k <= OCSP; k++)
            if (f[k].key)
                return fail(ld, f[k].key,
                            "%s: give either certificates or %s directly in tls, not both", where,
                            keys[k]);
        if (load_certificates(ld, f[CERTIFICATES].val, where, t) != PT_OK)
            return PT_ERR;
    } else if (f[CERT].key || f[KEY].key || f[OCSP].key) {
        t->certs = pt_calloc(1, sizeof(*t->certs));
        t->ncerts = 1;
        if (load_cert_fields(ld, n, where, f, &t->certs[0]) != PT_OK)
            return PT_ERR;
    } else {
        return fail(ld, n,
                    "%s: needs a certificate: certificates: [{cert: FILE, key: FILE}], or cert "
                    "and key",
                    where);
    }

    if (f[MIN_VERSION].val &&
        load_min_version(ld, f[MIN_VERSION].val, sub(what, sizeof(what), where, "min_version"),
                         &t->min_version) != PT_OK)
        return PT_ERR;
    if (f[CIPHERS].val &&
        want_list_string(ld, f[CIPHERS].val, sub(what, sizeof(what), where, "ciphers"),
                         &t->ciphers) != PT_OK)
        return PT_ERR;
    if (f[CIPHERSUITES].val &&
        want_list_string(ld, f[CIPHERSUITES].val, sub(what, sizeof(what), where, "ciphersuites"),
                         &t->ciphersuites) != PT_OK)
        return PT_ERR;
    if (f[GROUPS].val &&
        want_list_string(ld, f[GROUPS].val, sub(what, sizeof(what), where, "groups"), &t->groups) !=
            PT_OK)
        return PT_ERR;
    if (f[HTTP2].val &&
        want_bool(ld, f[HTTP2].val, sub(what, sizeof(what), where, "http2"), &t->http2) != PT_OK)
        return PT_ERR;
    if (f[SESSION_TICKETS].val &&
        want_bool(ld, f[SESSION_TICKETS].val, sub(what, sizeof(what), where, "session_tickets"),
                  &t->session_tickets) != PT_OK)
        return PT_ERR;
    if (f[TICKET_ROTATION].val &&
        want_duration(ld, f[TICKET_ROTATION].val, sub(what, sizeof(what), where, "ticket_rotation"),
                      false, &t->ticket_rotate_ms) != PT_OK)
        return PT_ERR;
    if (f[SESSION_CACHE].val &&
        want_u32(ld, f[SESSION_CACHE].val, sub(what, sizeof(what), where, "session_cache"), 0,
                 UINT32_MAX, &t->session_cache) != PT_OK)
        return PT_ERR;
    if (f[SESSION_TIMEOUT].val &&
        want_duration(ld, f[SESSION_TIMEOUT].val, sub(what, sizeof(what), where, "session_timeout"),
                      false, &t->session_timeout_ms) != PT_OK)
        return PT_ERR;
    if (f[HANDSHAKE_TIMEOUT].val &&
        want_duration(ld, f[HANDSHAKE_TIMEOUT].val,
                      sub(what, sizeof(what), where, "handshake_timeout"), false,
                      &t->handshake_timeout_ms) != PT_OK)
        return PT_ERR;
    if (f[CLIENT_AUTH].val &&
        load_client_auth(ld, f[CLIENT_AUTH].val, sub(what, sizeof(what), where, "client_auth"),
                         &t->client_auth) != PT_OK)
        return PT_ERR;
    if (t->client_auth == TLS_CLIENT_AUTH_OFF) {
        for (int k = CLIENT_CA; k <= CLIENT_SUBJECT_HEADER; k++)
            if (f[k].key)
                return fail(ld, f[k].key,
                            "%s: applies only when client_auth is optional or required",
                            sub(what, sizeof(what), where, keys[k]));
    } else if (!f[CLIENT_CA].val) {
        return fail(ld, f[CLIENT_AUTH].val,
                    "%s.client_auth: %s needs client_ca (the PEM bundle of the CAs that issue "
                    "client certificates)",
                    where, sval(f[CLIENT_AUTH].val));
    }
    if (f[CLIENT_CA].val &&
        want_file(ld, f[CLIENT_CA].val, sub(what, sizeof(what), where, "client_ca"),
                  &t->client_ca) != PT_OK)
        return PT_ERR;
    if (f[CLIENT_SUBJECT_HEADER].val) {
        char *lower;
        bool bad;

        sub(what, sizeof(what), where, "client_subject_header");
        if (want_field_name(ld, f[CLIENT_SUBJECT_HEADER].val, what, false,
                            &t->client_subject_header) != PT_OK)
            return PT_ERR;
        lower = pt_strdup(t->client_subject_header);
        lowercase(lower);
        /* nor a field Portico writes itself: the subject would be dropped or duplicated */
        bad = managed_field(lower) || strcmp(lower, "host") == 0 ||
              strcmp(lower, "x-forwarded-for") == 0 || strcmp(lower, "x-forwarded-proto") == 0 ||
              strcmp(lower, "x-forwarded-host") == 0 || strcmp(lower, "forwarded") == 0 ||
              strcmp(lower, "via") == 0 || strcmp(lower, "x-request-id") == 0;
        free(lower);
        if (bad)
            return fail(ld, f[CLIENT_SUBJECT_HEADER].val,
                        "%s: \"%s\" is managed by Portico; choose another name, e.g. "
                        "X-Client-Subject",
                        what, t->client_subject_header);
    }
    if (f[HSTS].val &&
        load_hsts(ld, f[HSTS].val, sub(what, sizeof(what), where, "hsts"), &t->hsts) != PT_OK)
        return PT_ERR;
    return PT_OK;
}

/* A listen entry written as a mapping: {address: ADDR, tls: {...}, h2c: BOOL}. Sets *addr
 * (never NULL on success), *tls (NULL without tls) and *h2c (NULL without h2c). */
static int
listen_entry_map(struct ld *ld, yaml_node_t *n, const char *where, yaml_node_t **addr,
                 yaml_node_t **tls, yaml_node_t **h2c)
{
    enum { ADDRESS, TLS, H2C, NKEYS };
    static const char *const keys[] = {"address", "tls", "h2c"};
    struct field f[NKEYS];
    bool near_miss = false;

    /* Without a key of the entry or a near miss of one to hint at (so no "address" either),
     * point at the mapping itself. */
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(ld, p->key);
        if (k->type == YAML_SCALAR_NODE &&
            (strcmp(sval(k), "address") == 0 || config_suggest(sval(k), keys, NKEYS)))
            near_miss = true;
    }
    if (!near_miss)
        return fail(ld, n, "%s: missing required key \"address\"", where);
    if (fields(ld, n, where, keys, NKEYS, f) != PT_OK)
        return PT_ERR;
    if (!f[ADDRESS].val)
        return fail(ld, n, "%s: missing required key \"address\"", where);
    *addr = f[ADDRESS].val;
    *tls = f[TLS].val;
    *h2c = f[H2C].val;
    return PT_OK;
}

static int
load_listen(struct ld *ld, yaml_node_t *n)
{
    struct config *c = ld->c;
    size_t count;
    bool list = n->type == YAML_SEQUENCE_NODE;
    char why[256];

    if (list) {
        count = seq_len(n);
        if (count == 0)
            return fail(ld, n, "listen: needs at least one address");
    } else if ((n->type == YAML_SCALAR_NODE && !is_null(n)) || n->type == YAML_MAPPING_NODE) {
        count = 1;
    } else {
        return fail(ld, n,
                    "listen: expected an address, a mapping {address: ..., tls: ...} or a list "
                    "of them, got %s",
                    kind(n));
    }
    c->listens = pt_calloc(count, sizeof(*c->listens));
    c->nlistens = (uint32_t)count;
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *it = list ? seq_at(ld, n, i) : n, *an = it, *tn = NULL, *hn = NULL;
        char where[32], twhere[48];
        const char *s;

        if (list)
            pathf(where, sizeof(where), "listen[%zu]", i);
        else
            pathf(where, sizeof(where), "listen");
        if (it->type == YAML_MAPPING_NODE) {
            if (listen_entry_map(ld, it, where, &an, &tn, &hn) != PT_OK)
                return PT_ERR;
        } else if (it->type != YAML_SCALAR_NODE) {
            return fail(ld, it,
                        "%s: expected an address or a mapping {address: ..., tls: ...}, "
                        "got %s",
                        where, kind(it));
        }
        if (want_str(ld, an, an == it ? "listen" : sub(twhere, sizeof(twhere), where, "address"),
                     &s) != PT_OK)
            return PT_ERR;
        if (config_addr_parse(s, CONFIG_ADDR_LISTEN, &c->listens[i], why, sizeof(why)) != PT_OK)
            return fail(ld, an, "%s", why);
        for (size_t j = 0; j < i; j++)
            if (addr_same(&c->listens[i], &c->listens[j]))
                return fail(ld, an, "duplicate listen address \"%s\"", s);
        if (hn) {
            sub(twhere, sizeof(twhere), where, "h2c");
            if (want_bool(ld, hn, twhere, &c->listens[i].h2c) != PT_OK)
                return PT_ERR;
            /* h2c is HTTP/2 over plain TCP; on TLS, h2 is negotiated with ALPN instead. */
            if (c->listens[i].h2c && tn)
                return fail(ld, hn,
                            "%s: is for plain listeners; a TLS listener offers HTTP/2 through "
                            "ALPN (tls.http2)",
                            twhere);
        }
        if (tn) {
            if (!c->listen_tls)
                c->listen_tls = pt_calloc(count, sizeof(*c->listen_tls));
            c->listen_tls[i] = pt_calloc(1, sizeof(*c->listen_tls[i]));
            if (load_tls(ld, tn, sub(twhere, sizeof(twhere), where, "tls"), c->listen_tls[i]) !=
                PT_OK)
                return PT_ERR;
        }
    }
    return PT_OK;
}

/* admin: a listen-style address that no listen address may share (after load_listen). */
static int
load_admin(struct ld *ld, yaml_node_t *n)
{
    struct config_addr a;
    char why[256];
    const char *s = NULL;

    if (want_str(ld, n, "admin", &s) != PT_OK)
        return PT_ERR;
    if (config_addr_parse(s, CONFIG_ADDR_ADMIN, &a, why, sizeof(why)) != PT_OK)
        return fail(ld, n, "admin: %s", why);
    if (config_admin_check(ld->c, &a, why, sizeof(why)) != PT_OK) {
        config_addr_fini(&a);
        return fail(ld, n, "admin: %s", why);
    }
    ld->c->admin = pt_calloc(1, sizeof(*ld->c->admin));
    *ld->c->admin = a;
    return PT_OK;
}

static int
load_timeouts(struct ld *ld, yaml_node_t *n)
{
    static const char *const keys[] = {
        "client_header",   "client_body",   "client_keepalive", "client_send", "upstream_connect",
        "upstream_header", "upstream_body", "upstream_send",    "tunnel_idle", "drain",
    };
    struct config_timeouts *t = &ld->c->timeouts;
    uint32_t *dst[] = {
        &t->client_header_ms, &t->client_body_ms,      &t->client_keepalive_ms,
        &t->client_send_ms,   &t->upstream_connect_ms, &t->upstream_header_ms,
        &t->upstream_body_ms, &t->upstream_send_ms,    &t->tunnel_idle_ms,
        &t->drain_ms,
    };
    struct field f[PT_ARRAY_LEN(keys)];
    char what[64];

    if (fields(ld, n, "timeouts", keys, PT_ARRAY_LEN(keys), f) != PT_OK)
        return PT_ERR;
    for (size_t i = 0; i < PT_ARRAY_LEN(keys); i++) {
        if (!f[i].val)
            continue;
        /* drain: 0 is a fast stop; every other timeout must be able to fire after something. */
        if (want_duration(ld, f[i].val, sub(what, sizeof(what), "timeouts", keys[i]),
                          dst[i] == &t->drain_ms, dst[i]) != PT_OK)
            return PT_ERR;
    }
    return PT_OK;
}

static int
load_limits(struct ld *ld, yaml_node_t *n)
{
    enum { REQUEST_LINE, HEADER_SIZE, HEADERS, BODY_SIZE, NKEYS };
    static const char *const keys[] = {"max_request_line", "max_header_size", "max_headers",
                                       "max_body_size"};
    struct config_limits *l = &ld->c->limits;
    struct field f[NKEYS];
    uint64_t v;

    if (fields(ld, n, "limits", keys, NKEYS, f) != PT_OK)
        return PT_ERR;
    if (f[REQUEST_LINE].val) {
        if (want_size(ld, f[REQUEST_LINE].val, "limits.max_request_line", 64, UINT32_MAX, &v) !=
            PT_OK)
            return PT_ERR;
        l->max_request_line = (uint32_t)v;
    }
    if (f[HEADER_SIZE].val) {
        if (want_size(ld, f[HEADER_SIZE].val, "limits.max_header_size", 64, UINT32_MAX, &v) !=
            PT_OK)
            return PT_ERR;
        l->max_header_size = (uint32_t)v;
    }
    if (f[HEADERS].val &&
        want_u32(ld, f[HEADERS].val, "limits.max_headers", 1, 100000, &l->max_headers) != PT_OK)
        return PT_ERR;
    if (f[BODY_SIZE].val) {
        yaml_node_t *b = f[BODY_SIZE].val;
        if (b->type == YAML_SCALAR_NODE && strcmp(sval(b), "unlimited") == 0)
            l->max_body_size = 0;
        else if (want_size(ld, b, "limits.max_body_size", 0, UINT64_MAX, &l->max_body_size) !=
                 PT_OK)
            return PT_ERR;
    }
    return PT_OK;
}

static int
load_http2(struct ld *ld, yaml_node_t *n)
{
    enum { MAX_CONCURRENT_STREAMS, WINDOW, MAX_RESETS, NKEYS };
    static const char *const keys[] = {"max_concurrent_streams", "window", "max_resets"};
    struct config_http2 *h = &ld->c->http2;
    struct field f[NKEYS];
    uint64_t v;

    if (fields(ld, n, "http2", keys, NKEYS, f) != PT_OK)
        return PT_ERR;
    if (f[MAX_CONCURRENT_STREAMS].val &&
        want_u32(ld, f[MAX_CONCURRENT_STREAMS].val, "http2.max_concurrent_streams", 1,
                 H2_MAX_STREAMS, &h->max_concurrent_streams) != PT_OK)
        return PT_ERR;
    if (f[WINDOW].val) {
        if (want_size(ld, f[WINDOW].val, "http2.window", H2_WINDOW_MIN, H2_WINDOW_MAX, &v) != PT_OK)
            return PT_ERR;
        h->window = (uint32_t)v;
    }
    if (f[MAX_RESETS].val && want_u32(ld, f[MAX_RESETS].val, "http2.max_resets", 1, H2_MAX_RESETS,
                                      &h->max_resets) != PT_OK)
        return PT_ERR;
    return PT_OK;
}

static int
load_proxy_headers(struct ld *ld, yaml_node_t *n)
{
    static const char *const keys[] = {
        "x_forwarded_for", "x_forwarded_proto",   "x_forwarded_host", "forwarded", "via",
        "request_id",      "request_id_response",
    };
    struct config *c = ld->c;
    bool *dst[] = {
        &c->x_forwarded_for, &c->x_forwarded_proto,   &c->x_forwarded_host, &c->forwarded, &c->via,
        &c->request_id,      &c->request_id_response,
    };
    struct field f[PT_ARRAY_LEN(keys)];
    char what[64];

    if (fields(ld, n, "proxy_headers", keys, PT_ARRAY_LEN(keys), f) != PT_OK)
        return PT_ERR;
    for (size_t i = 0; i < PT_ARRAY_LEN(keys); i++)
        if (f[i].val && want_bool(ld, f[i].val, sub(what, sizeof(what), "proxy_headers", keys[i]),
                                  dst[i]) != PT_OK)
            return PT_ERR;
    return PT_OK;
}

static int
load_hide_headers(struct ld *ld, yaml_node_t *n)
{
    struct config *c = ld->c;
    size_t count;

    if (n->type != YAML_SEQUENCE_NODE)
        return fail(ld, n, "hide_headers: expected a list of header names, got %s", kind(n));
    count = seq_len(n);
    c->hide_headers = count ? pt_calloc(count, sizeof(*c->hide_headers)) : NULL;
    c->nhide_headers = 0;
    for (size_t i = 0; i < count; i++) {
        if (want_field_name(ld, seq_at(ld, n, i), "hide_headers", true,
                            &c->hide_headers[c->nhide_headers]) != PT_OK)
            return PT_ERR;
        c->nhide_headers++;
    }
    return PT_OK;
}

static int
load_access_log(struct ld *ld, yaml_node_t *n)
{
    enum { PATH, FORMAT, NKEYS };
    static const char *const keys[] = {"path", "format"};
    struct field f[NKEYS] = {{NULL, NULL}, {NULL, NULL}};
    const char *s = NULL;

    if (n->type == YAML_SCALAR_NODE && !is_null(n)) {
        f[PATH].val = n; /* access_log: off */
    } else if (fields(ld, n, "access_log", keys, NKEYS, f) != PT_OK) {
        return PT_ERR;
    }
    if (f[PATH].val) {
        if (want_str(ld, f[PATH].val, "access_log.path", &s) != PT_OK)
            return PT_ERR;
        if (!*s)
            return fail(ld, f[PATH].val, "access_log.path: must not be empty");
        ld->c->access_log = pt_strdup(s);
    }
    if (f[FORMAT].val) {
        if (want_str(ld, f[FORMAT].val, "access_log.format", &s) != PT_OK)
            return PT_ERR;
        if (strcmp(s, "combined") == 0)
            ld->c->access_log_format = LOG_FORMAT_COMBINED;
        else if (strcmp(s, "json") == 0)
            ld->c->access_log_format = LOG_FORMAT_JSON;
        else
            return fail(ld, f[FORMAT].val,
                        "access_log.format: expected combined or json, got \"%s\"", s);
    }
    return PT_OK;
}

static int
load_error_log(struct ld *ld, yaml_node_t *n)
{
    enum { PATH, LEVEL, NKEYS };
    static const char *const keys[] = {"path", "level"};
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    struct field f[NKEYS] = {{NULL, NULL}, {NULL, NULL}};
    const char *s = NULL;

    if (n->type == YAML_SCALAR_NODE && !is_null(n)) {
        f[PATH].val = n; /* error_log: /var/log/portico/error.log */
    } else if (fields(ld, n, "error_log", keys, NKEYS, f) != PT_OK) {
        return PT_ERR;
    }
    if (f[PATH].val) {
        if (want_str(ld, f[PATH].val, "error_log.path", &s) != PT_OK)
            return PT_ERR;
        if (!*s)
            return fail(ld, f[PATH].val, "error_log.path: must not be empty");
        if (strcmp(s, "off") == 0)
            return fail(ld, f[PATH].val, "error_log.path: the error log cannot be turned off");
        ld->c->error_log = pt_strdup(s);
    }
    if (f[LEVEL].val) {
        size_t i;
        if (want_str(ld, f[LEVEL].val, "error_log.level", &s) != PT_OK)
            return PT_ERR;
        for (i = 0; i < PT_ARRAY_LEN(levels); i++)
            if (strcmp(s, levels[i]) == 0)
                break;
        if (i == PT_ARRAY_LEN(levels))
            return fail(ld, f[LEVEL].val,
                        "error_log.level: expected error, warn, info or debug, got \"%s\"", s);
        ld->c->error_log_level = LOG_ERROR + (int)i;
    }
    return PT_OK;
}

/* ---- upstreams ---- */

static int want_path(struct ld *ld, yaml_node_t *n, const char *what, const char **out);

static bool
is_name(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
            return false;
    }
    return true;
}

static int
load_server(struct ld *ld, yaml_node_t *n, const char *where, struct config_server *s)
{
    enum { ADDRESS, WEIGHT, MAX_CONNS, SLOW_START, BACKUP, DRAIN, NKEYS };
    static const char *const keys[] = {"address",    "weight", "max_conns",
                                       "slow_start", "backup", "drain"};
    struct field f[NKEYS];
    char what[240], why[256];
    const char *text;
    yaml_node_t *an;

    s->weight = 1;
    if (n->type == YAML_SCALAR_NODE) {
        an = n;
    } else {
        if (fields(ld, n, where, keys, NKEYS, f) != PT_OK)
            return PT_ERR;
        if (!f[ADDRESS].val)
            return fail(ld, n, "%s: missing required key \"address\"", where);
        an = f[ADDRESS].val;
        if (f[WEIGHT].val && want_u32(ld, f[WEIGHT].val, sub(what, sizeof(what), where, "weight"),
                                      1, 1000, &s->weight) != PT_OK)
            return PT_ERR;
        if (f[MAX_CONNS].val &&
            want_u32(ld, f[MAX_CONNS].val, sub(what, sizeof(what), where, "max_conns"), 0,
                     UINT32_MAX, &s->max_conns) != PT_OK)
            return PT_ERR;
        if (f[SLOW_START].val &&
            want_duration(ld, f[SLOW_START].val, sub(what, sizeof(what), where, "slow_start"), true,
                          &s->slow_start_ms) != PT_OK)
            return PT_ERR;
        if (f[BACKUP].val && want_bool(ld, f[BACKUP].val, sub(what, sizeof(what), where, "backup"),
                                       &s->backup) != PT_OK)
            return PT_ERR;
        if (f[DRAIN].val && want_bool(ld, f[DRAIN].val, sub(what, sizeof(what), where, "drain"),
                                      &s->drain) != PT_OK)
            return PT_ERR;
    }
    if (want_str(ld, an, where, &text) != PT_OK)
        return PT_ERR;
    if (config_addr_parse(text, CONFIG_ADDR_SERVER, &s->addr, why, sizeof(why)) != PT_OK)
        return fail(ld, an, "%s", why);
    s->host_header = pt_strdup(s->addr.text);
    return PT_OK;
}

static int
load_balance(struct ld *ld, yaml_node_t *n, const char *what, struct config_upstream *u,
             bool *sticky)
{
    char why[256];
    const char *s = NULL;

    if (want_str(ld, n, what, &s) != PT_OK)
        return PT_ERR;
    if (config_balance_parse(s, &u->balance, sticky, why, sizeof(why)) != PT_OK)
        return fail(ld, n, "%s: %s", what, why);
    return PT_OK;
}

static int
load_hash_key(struct ld *ld, yaml_node_t *n, const char *what, struct config_upstream *u)
{
    static const char *const simple[] = {"client_ip", "uri", "path"};
    static const enum hash_key_kind simple_kind[] = {HASH_KEY_CLIENT_IP, HASH_KEY_URI,
                                                     HASH_KEY_PATH};
    const char *s, *hint;

    if (want_str(ld, n, what, &s) != PT_OK)
        return PT_ERR;
    for (size_t i = 0; i < PT_ARRAY_LEN(simple); i++) {
        if (strcmp(s, simple[i]) == 0) {
            u->hash_key = simple_kind[i];
            return PT_OK;
        }
    }
    if (strncmp(s, "header:", 7) == 0) {
        if (!config_is_token(s + 7))
            return fail(ld, n, "%s: \"%s\" is not a valid header name", what, s + 7);
        u->hash_key = HASH_KEY_HEADER;
        u->hash_key_name = pt_strdup(s + 7);
        lowercase(u->hash_key_name);
        return PT_OK;
    }
    if (strncmp(s, "cookie:", 7) == 0) {
        if (!config_is_token(s + 7))
            return fail(ld, n, "%s: \"%s\" is not a valid cookie name", what, s + 7);
        u->hash_key = HASH_KEY_COOKIE;
        u->hash_key_name = pt_strdup(s + 7);
        return PT_OK;
    }
    hint = config_suggest(s, simple, PT_ARRAY_LEN(simple));
    if (hint)
        return fail(ld, n, "%s: unknown hash key \"%s\", did you mean \"%s\"?", what, s, hint);
    return fail(ld, n, "%s: expected client_ip, uri, path, header:NAME or cookie:NAME, got \"%s\"",
                what, s);
}

static int
load_sticky(struct ld *ld, yaml_node_t *n, const char *uwhere, struct config_sticky *st)
{
    enum { COOKIE, SECRET, MAX_AGE, FALLBACK, NKEYS };
    static const char *const keys[] = {"cookie", "secret", "max_age", "fallback"};
    static const char *const fallbacks[] = {"round_robin", "least_conn", "random_two", "ewma"};
    static const enum balance_kind fallback_kind[] = {BALANCE_ROUND_ROBIN, BALANCE_LEAST_CONN,
                                                      BALANCE_RANDOM_TWO, BALANCE_EWMA};
    struct field f[NKEYS];
    char where[200], what[240];
    const char *s = NULL;

    if (is_null(n))
        return PT_OK; /* "sticky:" with nothing under it: every default */
    sub(where, sizeof(where), uwhere, "sticky");
    if (fields(ld, n, where, keys, NKEYS, f) != PT_OK)
        return PT_ERR;
    if (f[COOKIE].val) {
        sub(what, sizeof(what), where, "cookie");
        if (want_str(ld, f[COOKIE].val, what, &s) != PT_OK)
            return PT_ERR;
        if (!config_is_token(s))
            return fail(ld, f[COOKIE].val, "%s: \"%s\" is not a valid cookie name", what, s);
        st->cookie = pt_strdup(s);
    }
    if (f[SECRET].val) {
        sub(what, sizeof(what), where, "secret");
        if (want_str(ld, f[SECRET].val, what, &s) != PT_OK)
            return PT_ERR;
        if (!*s)
            return fail(ld, f[SECRET].val, "%s: must not be empty", what);
        config_sticky_key_from_secret(s, strlen(s), st->key);
    }
    if (f[MAX_AGE].val) {
        uint32_t ms;
        if (want_duration(ld, f[MAX_AGE].val, sub(what, sizeof(what), where, "max_age"), true,
                          &ms) != PT_OK)
            return PT_ERR;
        st->max_age = ms / 1000;
    }
    if (f[FALLBACK].val) {
        size_t i;
        sub(what, sizeof(what), where, "fallback");
        if (want_str(ld, f[FALLBACK].val, what, &s) != PT_OK)
            return PT_ERR;
        for (i = 0; i < PT_ARRAY_LEN(fallbacks); i++)
            if (strcmp(s, fallbacks[i]) == 0)
                break;
        if (i == PT_ARRAY_LEN(fallbacks))
            return fail(ld, f[FALLBACK].val,
                        "%s: expected round_robin, least_conn, random_two or ewma, got \"%s\"",
                        what, s);
        st->fallback = fallback_kind[i];
    }
    return PT_OK;
}

/* One entry of health.expect: a status "200" or a range "200-399", each 100..599. */
static int
load_expect_entry(struct ld *ld, yaml_node_t *n, const char *what, uint16_t range[2])
{
    const char *s, *dash;
    uint32_t v[2];

    if (want_str(ld, n, what, &s) != PT_OK)
        return PT_ERR;
    dash = strchr(s, '-');
    for (int k = 0; k < 2; k++) {
        const char *p = k == 0 ? s : dash + 1, *e = k == 0 && dash ? dash : p + strlen(p);
        if (e - p != 3)
            goto bad;
        v[k] = 0;
        for (const char *q = p; q < e; q++) {
            if (*q < '0' || *q > '9')
                goto bad;
            v[k] = v[k] * 10 + (uint32_t)(*q - '0');
        }
        if (v[k] < 100 || v[k] > 599)
            goto bad;
        if (!dash) {
            v[1] = v[0];
            break;
        }
    }
    if (v[0] > v[1])
        return fail(ld, n, "%s: bad range \"%s\": %u is greater than %u", what, s, v[0], v[1]);
    range[0] = (uint16_t)v[0];
    range[1] = (uint16_t)v[1];
    return PT_OK;
bad:
    return fail(ld, n, "%s: expected a status 100..599 or a range like \"200-399\", got \"%s\"",
                what, s);
}

static int
load_health(struct ld *ld, yaml_node_t *n, const char *uwhere, struct config_health *h)
{
    enum { PATH, METHOD, HOST, EXPECT, BODY, INTERVAL, TIMEOUT, JITTER, RISE, FALL, NKEYS };
    static const char *const keys[] = {"path",     "method",  "host",   "expect", "body",
                                       "interval", "timeout", "jitter", "rise",   "fall"};
    struct field f[NKEYS];
    char where[200], what[240];
    const char *s = NULL;
    bool on;

    sub(where, sizeof(where), uwhere, "health");
    if (is_null(n)) {
        h->enabled = true; /* "health:" with nothing under it: every default */
        return PT_OK;
    }
    if (switch_word(n, &on)) {
        h->enabled = on;
        return PT_OK;
    }
    if (n->type != YAML_MAPPING_NODE)
        return fail(ld, n, "%s: expected a mapping, on or off, got %s%s%s%s", where, kind(n),
                    n->type == YAML_SCALAR_NODE ? " \"" : "",
                    n->type == YAML_SCALAR_NODE ? sval(n) : "",
                    n->type == YAML_SCALAR_NODE ? "\"" : "");
    if (fields(ld, n, where, keys, NKEYS, f) != PT_OK)
        return PT_ERR;
    h->enabled = true;

    if (f[PATH].val) {
        if (want_path(ld, f[PATH].val, sub(what, sizeof(what), where, "path"), &s) != PT_OK)
            return PT_ERR;
        h->path = pt_strdup(s);
    }
    if (f[METHOD].val) {
        sub(what, sizeof(what), where, "method");
        if (want_str(ld, f[METHOD].val, what, &s) != PT_OK)
            return PT_ERR;
        if (strcmp(s, "HEAD") == 0)
            h->method = pt_strdup(s);
        else if (strcmp(s, "GET") != 0)
            return fail(ld, f[METHOD].val, "%s: expected GET or HEAD, got \"%s\"", what, s);
    }
    if (f[HOST].val) {
        sub(what, sizeof(what), where, "host");
        if (want_str(ld, f[HOST].val, what, &s) != PT_OK)
            return PT_ERR;
        if (!*s || has_ctl(s, false))
            return fail(ld, f[HOST].val, "%s: expected a host name without spaces, got \"%s\"",
                        what, s);
        h->host = pt_strdup(s);
    }
    if (f[EXPECT].val) {
        yaml_node_t *e = f[EXPECT].val;
        bool list = e->type == YAML_SEQUENCE_NODE;
        size_t count = list ? seq_len(e) : 1;

        sub(what, sizeof(what), where, "expect");
        if (count == 0)
            return fail(ld, e, "%s: needs at least one status or range", what);
        if (count > PT_ARRAY_LEN(h->expect))
            return fail(ld, e, "%s: at most %zu entries, got %zu", what, PT_ARRAY_LEN(h->expect),
                        count);
        for (size_t i = 0; i < count; i++)
            if (load_expect_entry(ld, list ? seq_at(ld, e, i) : e, what, h->expect[i]) != PT_OK)
                return PT_ERR;
        h->nexpect = (uint32_t)count;
    }
    if (f[BODY].val) {
        sub(what, sizeof(what), where, "body");
        if (want_str(ld, f[BODY].val, what, &s) != PT_OK)
            return PT_ERR;
        if (!*s)
            return fail(ld, f[BODY].val, "%s: must not be empty", what);
        if (strlen(s) > 65536)
            return fail(ld, f[BODY].val,
                        "%s: at most 64 KiB (only the first 64 KiB of a response are read)", what);
        h->body = pt_strdup(s);
    }
    if (f[INTERVAL].val &&
        want_duration(ld, f[INTERVAL].val, sub(what, sizeof(what), where, "interval"), false,
                      &h->interval_ms) != PT_OK)
        return PT_ERR;
    if (f[TIMEOUT].val &&
        want_duration(ld, f[TIMEOUT].val, sub(what, sizeof(what), where, "timeout"), false,
                      &h->timeout_ms) != PT_OK)
        return PT_ERR;
    if (f[JITTER].val) {
        if (want_duration(ld, f[JITTER].val, sub(what, sizeof(what), where, "jitter"), true,
                          &h->jitter_ms) != PT_OK)
            return PT_ERR;
    } else {
        h->jitter_ms = h->interval_ms / 10;
    }
    if (f[RISE].val && want_u32(ld, f[RISE].val, sub(what, sizeof(what), where, "rise"), 1, 100,
                                &h->rise) != PT_OK)
        return PT_ERR;
    if (f[FALL].val && want_u32(ld, f[FALL].val, sub(what, sizeof(what), where, "fall"), 1, 100,
                                &h->fall) != PT_OK)
        return PT_ERR;
    return PT_OK;
}

static int
load_outlier(struct ld *ld, yaml_node_t *n, const char *uwhere, struct config_outlier *o)
{
    enum { FAILURES, FIVEXX, BASE, MAX, PERCENT, NKEYS };
    static const char *const keys[] = {"consecutive_failures", "consecutive_5xx", "base_ejection",
                                       "max_ejection", "max_ejected_percent"};
    struct field f[NKEYS];
    char where[200], what[240];
    bool on;

    sub(where, sizeof(where), uwhere, "outlier");
    if (is_null(n))
        return PT_OK;
    if (switch_word(n, &on)) {
        if (!on) {
            o->consecutive_failures = 0;
            o->consecutive_5xx = 0;
        }
        return PT_OK;
    }
    if (n->type != YAML_MAPPING_NODE)
        return fail(ld, n, "%s: expected a mapping or off, got %s%s%s%s", where, kind(n),
                    n->type == YAML_SCALAR_NODE ? " \"" : "",
                    n->type == YAML_SCALAR_NODE ? sval(n) : "",
                    n->type == YAML_SCALAR_NODE ? "\"" : "");
    if (fields(ld, n, where, keys, NKEYS, f) != PT_OK)
        return PT_ERR;
    if (f[FAILURES].val &&
        want_u32(ld, f[FAILURES].val, sub(what, sizeof(what), where, keys[FAILURES]), 0, UINT32_MAX,
                 &o->consecutive_failures) != PT_OK)
        return PT_ERR;
    if (f[FIVEXX].val && want_u32(ld, f[FIVEXX].val, sub(what, sizeof(what), where, keys[FIVEXX]),
                                  0, UINT32_MAX, &o->consecutive_5xx) != PT_OK)
        return PT_ERR;
    if (f[BASE].val && want_duration(ld, f[BASE].val, sub(what, sizeof(what), where, keys[BASE]),
                                     false, &o->base_ejection_ms) != PT_OK)
        return PT_ERR;
    if (f[MAX].val && want_duration(ld, f[MAX].val, sub(what, sizeof(what), where, keys[MAX]),
                                    false, &o->max_ejection_ms) != PT_OK)
        return PT_ERR;
    if (o->max_ejection_ms < o->base_ejection_ms) {
        yaml_node_t *at = f[MAX].val ? f[MAX].val : f[BASE].val;
        return fail(ld, at, "%s: max_ejection (%ums) must not be shorter than base_ejection (%ums)",
                    where, o->max_ejection_ms, o->base_ejection_ms);
    }
    if (f[PERCENT].val &&
        want_u32(ld, f[PERCENT].val, sub(what, sizeof(what), where, keys[PERCENT]), 0, 100,
                 &o->max_ejected_percent) != PT_OK)
        return PT_ERR;
    return PT_OK;
}

static int
load_queue(struct ld *ld, yaml_node_t *n, const char *uwhere, struct config_upstream *u)
{
    enum { SIZE, TIMEOUT, NKEYS };
    static const char *const keys[] = {"size", "timeout"};
    struct field f[NKEYS];
    char where[200], what[240];

    if (is_null(n))
        return PT_OK;
    sub(where, sizeof(where), uwhere, "queue");
    if (fields(ld, n, where, keys, NKEYS, f) != PT_OK)
        return PT_ERR;
    if (f[SIZE].val && want_u32(ld, f[SIZE].val, sub(what, sizeof(what), where, "size"), 0,
                                UINT32_MAX, &u->queue_size) != PT_OK)
        return PT_ERR;
    if (f[TIMEOUT].val &&
        want_duration(ld, f[TIMEOUT].val, sub(what, sizeof(what), where, "timeout"), false,
                      &u->queue_timeout_ms) != PT_OK)
        return PT_ERR;
    return PT_OK;
}

static int
load_retry_budget(struct ld *ld, yaml_node_t *n, const char *uwhere, struct config_upstream *u)
{
    enum { PERCENT, MIN, NKEYS };
    static const char *const keys[] = {"percent", "min_per_second"};
    struct field f[NKEYS];
    char where[200], what[240];
    bool on;

    sub(where, sizeof(where), uwhere, "retry_budget");
    if (is_null(n))
        return PT_OK;
    if (switch_word(n, &on)) {
        if (!on) {
            u->retry_budget_percent = 0; /* no budget: see config.h */
            u->retry_budget_min = 0;
        }
        return PT_OK;
    }
    if (n->type != YAML_MAPPING_NODE)
        return fail(ld, n, "%s: expected a mapping or off, got %s%s%s%s", where, kind(n),
                    n->type == YAML_SCALAR_NODE ? " \"" : "",
                    n->type == YAML_SCALAR_NODE ? sval(n) : "",
                    n->type == YAML_SCALAR_NODE ? "\"" : "");
    if (fields(ld, n, where, keys, NKEYS, f) != PT_OK)
        return PT_ERR;
    if (f[PERCENT].val && want_u32(ld, f[PERCENT].val, sub(what, sizeof(what), where, "percent"), 1,
                                   100, &u->retry_budget_percent) != PT_OK)
        return PT_ERR;
    if (f[MIN].val && want_u32(ld, f[MIN].val, sub(what, sizeof(what), where, "min_per_second"), 0,
                               UINT32_MAX, &u->retry_budget_min) != PT_OK)
        return PT_ERR;
    return PT_OK;
}

/* upstreams.NAME.tls: {verify, ca, cert, key, server_name} for its https:// servers. */
static int
load_upstream_tls(struct ld *ld, yaml_node_t *n, const char *where, struct config_upstream *u)
{
    enum { VERIFY, CA, CERT, KEY, SERVER_NAME, NKEYS };
    static const char *const keys[] = {"verify", "ca", "cert", "key", "server_name"};
    struct field f[NKEYS];
    char twhere[200], what[240];
    struct config_upstream_tls *t = &u->tls;

    pathf(twhere, sizeof(twhere), "%s.tls", where);
    if (fields(ld, n, twhere, keys, NKEYS, f) != PT_OK)
        return PT_ERR;
    bool any_https = false;
    for (uint32_t i = 0; i < u->nservers; i++)
        any_https |= u->servers[i].addr.https;
    if (!any_https)
        return fail(ld, n, "%s: no server of this pool is written https://", twhere);
    if (f[VERIFY].val && want_bool(ld, f[VERIFY].val, sub(what, sizeof(what), twhere, "verify"),
                                   &t->verify) != PT_OK)
        return PT_ERR;
    if (f[CA].val &&
        want_file(ld, f[CA].val, sub(what, sizeof(what), twhere, "ca"), &t->ca) != PT_OK)
        return PT_ERR;
    if (f[CERT].val &&
        want_file(ld, f[CERT].val, sub(what, sizeof(what), twhere, "cert"), &t->cert) != PT_OK)
        return PT_ERR;
    if (f[KEY].val &&
        want_file(ld, f[KEY].val, sub(what, sizeof(what), twhere, "key"), &t->key) != PT_OK)
        return PT_ERR;
    if (!t->cert != !t->key)
        return fail(ld, n, "%s: cert and key go together", twhere);
    if (f[SERVER_NAME].val) {
        const char *s = NULL;
        if (want_str(ld, f[SERVER_NAME].val, sub(what, sizeof(what), twhere, "server_name"), &s) !=
            PT_OK)
            return PT_ERR;
        if (!*s || has_ctl(s, false))
            return fail(ld, f[SERVER_NAME].val, "%s: expected a host name", what);
        t->server_name = pt_strdup(s);
    }
    return PT_OK;
}

static int
load_upstream(struct ld *ld, yaml_node_t *n, const char *where, struct config_upstream *u)
{
    enum {
        SERVERS,
        BALANCE,
        HASH_KEY,
        STICKY,
        HEALTH,
        OUTLIER,
        QUEUE,
        RETRY_BUDGET,
        KEEPALIVE,
        KEEPALIVE_TIMEOUT,
        KEEPALIVE_TRIM,
        KEEPALIVE_REQUESTS,
        TLS,
        NKEYS
    };
    static const char *const keys[] = {
        "servers",   "balance",           "hash_key",       "sticky",
        "health",    "outlier",           "queue",          "retry_budget",
        "keepalive", "keepalive_timeout", "keepalive_trim", "keepalive_requests",
        "tls"};
    struct field f[NKEYS];
    char what[200], swhere[200];
    yaml_node_t *sv;
    bool sticky = false;
    uint32_t primaries = 0;

    config_upstream_defaults(u);
    if (fields(ld, n, where, keys, NKEYS, f) != PT_OK)
        return PT_ERR;
    sv = f[SERVERS].val;
    if (!sv)
        return fail(ld, n, "%s: missing required key \"servers\"", where);
    if (sv->type != YAML_SEQUENCE_NODE)
        return fail(ld, sv, "%s.servers: expected a list of servers, got %s", where, kind(sv));
    if (seq_len(sv) == 0)
        return fail(ld, sv, "%s.servers: needs at least one server", where);
    u->servers = pt_calloc(seq_len(sv), sizeof(*u->servers));
    u->nservers = (uint32_t)seq_len(sv);
    for (size_t i = 0; i < seq_len(sv); i++) {
        pathf(swhere, sizeof(swhere), "%s.servers[%zu]", where, i);
        if (load_server(ld, seq_at(ld, sv, i), swhere, &u->servers[i]) != PT_OK)
            return PT_ERR;
        primaries += !u->servers[i].backup;
    }
    if (primaries == 0)
        return fail(ld, sv, "%s.servers: needs at least one server that is not a backup", where);

    if (f[BALANCE].val &&
        load_balance(ld, f[BALANCE].val, sub(what, sizeof(what), where, "balance"), u, &sticky) !=
            PT_OK)
        return PT_ERR;
    if (f[HASH_KEY].val) {
        sub(what, sizeof(what), where, "hash_key");
        if (u->balance != BALANCE_HASH || sticky)
            return fail(ld, f[HASH_KEY].key, "%s: applies only to balance: hash", what);
        if (load_hash_key(ld, f[HASH_KEY].val, what, u) != PT_OK)
            return PT_ERR;
    }
    if (f[STICKY].val) {
        if (!sticky)
            return fail(ld, f[STICKY].key, "%s: applies only to balance: sticky",
                        sub(what, sizeof(what), where, "sticky"));
        if (load_sticky(ld, f[STICKY].val, where, &u->sticky) != PT_OK)
            return PT_ERR;
    }
    if (sticky)
        config_sticky_enable(u);
    if (f[HEALTH].val && load_health(ld, f[HEALTH].val, where, &u->health) != PT_OK)
        return PT_ERR;
    if (f[OUTLIER].val && load_outlier(ld, f[OUTLIER].val, where, &u->outlier) != PT_OK)
        return PT_ERR;
    if (f[QUEUE].val && load_queue(ld, f[QUEUE].val, where, u) != PT_OK)
        return PT_ERR;
    if (f[RETRY_BUDGET].val && load_retry_budget(ld, f[RETRY_BUDGET].val, where, u) != PT_OK)
        return PT_ERR;
    if (f[TLS].val && load_upstream_tls(ld, f[TLS].val, where, u) != PT_OK)
        return PT_ERR;
    if (f[KEEPALIVE].val &&
        want_u32(ld, f[KEEPALIVE].val, sub(what, sizeof(what), where, "keepalive"), 0, 100000,
                 &u->keepalive) != PT_OK)
        return PT_ERR;
    if (f[KEEPALIVE_TIMEOUT].val &&
        want_duration(ld, f[KEEPALIVE_TIMEOUT].val,
                      sub(what, sizeof(what), where, "keepalive_timeout"), false,
                      &u->keepalive_timeout_ms) != PT_OK)
        return PT_ERR;
    if (f[KEEPALIVE_TRIM].val &&
        want_duration(ld, f[KEEPALIVE_TRIM].val, sub(what, sizeof(what), where, "keepalive_trim"),
                      false, &u->keepalive_trim_ms) != PT_OK)
        return PT_ERR;
    if (f[KEEPALIVE_REQUESTS].val && want_u32(ld, f[KEEPALIVE_REQUESTS].val,
                                              sub(what, sizeof(what), where, "keepalive_requests"),
                                              1, UINT32_MAX, &u->keepalive_requests) != PT_OK)
        return PT_ERR;
    return PT_OK;
}

static int
load_upstreams(struct ld *ld, yaml_node_t *n)
{
    struct config *c = ld->c;
    size_t count;
    char where[200];

    if (want_map(ld, n, "upstreams") != PT_OK ||
        check_dups(ld, n, "upstreams", "upstream", false) != PT_OK)
        return PT_ERR;
    count = map_len(n);
    c->upstreams = count ? pt_calloc(count, sizeof(*c->upstreams)) : NULL;
    c->nupstreams = (uint32_t)count;
    for (size_t i = 0; i < count; i++) {
        yaml_node_pair_t *p = &n->data.mapping.pairs.start[i];
        yaml_node_t *k = node(ld, p->key);
        struct config_upstream *u = &c->upstreams[i];

        if (!is_name(sval(k)))
            return fail(ld, k,
                        "upstreams: bad upstream name \"%s\" (use letters, digits, '-', '_', '.')",
                        sval(k));
        u->name = pt_strdup(sval(k));
        u->index = (uint32_t)i;
        pathf(where, sizeof(where), "upstreams.%s", u->name);
        if (load_upstream(ld, node(ld, p->value), where, u) != PT_OK)
            return PT_ERR;
    }
    return PT_OK;
}

/* ---- routes ---- */

/* A host pattern: lowercase name without port, optionally "*." followed by a name. */
static int
want_host_pattern(struct ld *ld, yaml_node_t *n, const char *what, char **out)
{
    const char *s, *h;
    size_t len;

    if (want_str(ld, n, what, &s) != PT_OK)
        return PT_ERR;
    h = strncmp(s, "*.", 2) == 0 ? s + 2 : s;
    len = strlen(h);
    if (len && h[len - 1] == '.')
        len--; /* "example.com." is the same host */
    if (h[0] == '[' && len > 2 && h[len - 1] == ']' && h == s) {
        for (size_t i = 1; i + 1 < len; i++)
            if (!strchr("0123456789abcdefABCDEF:.", h[i]))
                goto bad;
    } else {
        if (len == 0 || h[0] == '.')
            goto bad;
        for (size_t i = 0; i < len; i++) {
            unsigned char ch = (unsigned char)h[i];
            if (ch == ':')
                return fail(ld, n, "%s: host \"%s\" must not include a port", what, s);
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_'))
                goto bad;
        }
    }
    *out = pt_strndup(s, (size_t)(h - s) + len);
    lowercase(*out);
    return PT_OK;
bad:
    return fail(ld, n,
                "%s: bad host \"%s\" (expected a name like api.example.com or a wildcard like "
                "*.example.com)",
                what, s);
}

static int
want_path(struct ld *ld, yaml_node_t *n, const char *what, const char **out)
{
    if (want_str(ld, n, what, out) != PT_OK)
        return PT_ERR;
    if ((*out)[0] != '/')
        return fail(ld, n, "%s: must start with '/', got \"%s\"", what, *out);
    if (has_ctl(*out, false))
        return fail(ld, n, "%s: must not contain spaces or control characters", what);
    return PT_OK;
}

/* Compiles a path regex; on error points at the offending character when the scalar is a
 * single line written without escapes, so the column can be computed. */
static int
compile_regex(struct ld *ld, yaml_node_t *n, const char *what, struct route *r)
{
    const char *s = sval(n);
    size_t len = strlen(s), raw = n->end_mark.index - n->start_mark.index;
    PCRE2_SIZE erroff;
    int errcode;
    pcre2_code *re;

    re = pcre2_compile((PCRE2_SPTR)s, len, 0, &errcode, &erroff, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        yaml_node_t at = *n;
        size_t quote = n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? 0 : 1;
        bool ascii = true;

        for (size_t i = 0; i < len; i++)
            ascii = ascii && (unsigned char)s[i] < 0x80;
        if (ascii && n->start_mark.line == n->end_mark.line && raw == len + 2 * quote &&
            erroff <= len)
            at.start_mark.column += quote + erroff;
        pcre2_get_error_message(errcode, msg, sizeof(msg));
        return fail(ld, &at, "%s: bad regex: %s at offset %zu", what, (const char *)msg,
                    (size_t)erroff);
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* without JIT, pcre2_match interprets */
    r->path_re = re;
    return PT_OK;
}

static int
load_match(struct ld *ld, yaml_node_t *n, const char *rwhere, struct route *r)
{
    enum { HOST, PATH, PATH_EXACT, PATH_REGEX, METHOD, HEADERS, NKEYS };
    static const char *const keys[] = {"host",       "path",   "path_exact",
                                       "path_regex", "method", "headers"};
    struct field f[NKEYS];
    char where[200], what[240];
    yaml_node_t *pathn = NULL;

    if (is_null(n))
        return PT_OK; /* "match:" with nothing under it matches everything */
    pathf(where, sizeof(where), "%s.match", rwhere);
    if (fields(ld, n, where, keys, NKEYS, f) != PT_OK)
        return PT_ERR;

    if (f[HOST].val) {
        yaml_node_t *h = f[HOST].val;
        bool list = h->type == YAML_SEQUENCE_NODE;
        size_t count = list ? seq_len(h) : 1;

        sub(what, sizeof(what), where, "host");
        if (list && count == 0)
            return fail(ld, h, "%s: needs at least one host", what);
        r->hosts = pt_calloc(count, sizeof(*r->hosts));
        for (size_t i = 0; i < count; i++) {
            if (want_host_pattern(ld, list ? seq_at(ld, h, i) : h, what, &r->hosts[i]) != PT_OK)
                return PT_ERR;
            r->nhosts++;
        }
    }

    for (int k = PATH; k <= PATH_REGEX; k++) {
        const char *s;

        if (!f[k].val)
            continue;
        sub(what, sizeof(what), where, keys[k]);
        if (pathn)
            return fail(ld, f[k].key, "%s: give only one of path, path_exact and path_regex",
                        where);
        pathn = f[k].val;
        if (k == PATH_REGEX) {
            if (want_str(ld, pathn, what, &s) != PT_OK)
                return PT_ERR;
            if (!*s)
                return fail(ld, pathn, "%s: must not be empty", what);
            if (compile_regex(ld, pathn, what, r) != PT_OK)
                return PT_ERR;
            r->path_kind = ROUTE_PATH_REGEX;
        } else {
            if (want_path(ld, pathn, what, &s) != PT_OK)
                return PT_ERR;
            r->path_kind = k == PATH ? ROUTE_PATH_PREFIX : ROUTE_PATH_EXACT;
        }
        r->path = pt_strdup(s);
        r->path_len = (uint32_t)strlen(s);
    }

    if (f[METHOD].val) {
        yaml_node_t *m = f[METHOD].val;
        bool list = m->type == YAML_SEQUENCE_NODE;
        size_t count = list ? seq_len(m) : 1;

        sub(what, sizeof(what), where, "method");
        if (list && count == 0)
            return fail(ld, m, "%s: needs at least one method", what);
        r->methods = pt_calloc(count, sizeof(*r->methods));
        for (size_t i = 0; i < count; i++) {
            yaml_node_t *it = list ? seq_at(ld, m, i) : m;
            const char *s;
            char up[32];

            if (want_str(ld, it, what, &s) != PT_OK)
                return PT_ERR;
            if (!config_is_token(s))
                return fail(ld, it, "%s: \"%s\" is not a valid method", what, s);
            for (size_t j = 0; s[j]; j++) {
                if (s[j] >= 'a' && s[j] <= 'z') {
                    snprintf(up, sizeof(up), "%s", s);
                    for (char *p = up; *p; p++)
                        if (*p >= 'a' && *p <= 'z')
                            *p &= ~0x20;
                    return fail(ld, it,
                                "%s: methods are case-sensitive and written in uppercase: "
                                "\"%s\", did you mean \"%s\"?",
                                what, s, up);
                }
            }
            r->methods[r->nmethods++] = pt_strdup(s);
        }
    }

    if (f[HEADERS].val) {
        yaml_node_t *h = f[HEADERS].val;

        sub(what, sizeof(what), where, "headers");
        if (want_map(ld, h, what) != PT_OK || check_dups(ld, h, what, "header", true) != PT_OK)
            return PT_ERR;
        r->headers = map_len(h) ? pt_calloc(map_len(h), sizeof(*r->headers)) : NULL;
        for (size_t i = 0; i < map_len(h); i++) {
            yaml_node_pair_t *p = &h->data.mapping.pairs.start[i];
            struct route_header_match *hm = &r->headers[r->nheaders];
            const char *v;

            if (want_field_name(ld, node(ld, p->key), what, true, &hm->name) != PT_OK)
                return PT_ERR;
            r->nheaders++;
            if (want_str(ld, node(ld, p->value), what, &v) != PT_OK)
                return PT_ERR;
            hm->value = strcmp(v, "*") == 0 ? NULL : pt_strdup(v);
        }
    }
    return PT_OK;
}

/* proxy.retry_on: a list (or one) of the six conditions; [] retries nothing. */
static int
load_retry_on(struct ld *ld, yaml_node_t *n, const char *what, struct route *r)
{
    static const char *const names[] = {"connect_failure", "reset", "timeout", "502", "503", "504"};
    static const uint32_t bits[] = {RETRY_ON_CONNECT_FAILURE,
                                    RETRY_ON_RESET,
                                    RETRY_ON_TIMEOUT,
                                    RETRY_ON_502,
                                    RETRY_ON_503,
                                    RETRY_ON_504};
    bool list = n->type == YAML_SEQUENCE_NODE;
    size_t count = list ? seq_len(n) : 1;

    r->retry_on = 0;
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *it = list ? seq_at(ld, n, i) : n;
        const char *s, *hint;
        size_t k;

        if (want_str(ld, it, what, &s) != PT_OK)
            return PT_ERR;
        for (k = 0; k < PT_ARRAY_LEN(names); k++)
            if (strcmp(s, names[k]) == 0)
                break;
        if (k < PT_ARRAY_LEN(names)) {
            r->retry_on |= bits[k];
            continue;
        }
        /* No hint for numbers: "500" is not a near miss of "502". */
        hint = s[0] >= '0' && s[0] <= '9' ? NULL : config_suggest(s, names, PT_ARRAY_LEN(names));
        if (hint)
            return fail(ld, it, "%s: unknown condition \"%s\", did you mean \"%s\"?", what, s,
                        hint);
        return fail(ld, it,
                    "%s: unknown condition \"%s\" (expected connect_failure, reset, timeout, 502, "
                    "503 or 504)",
                    what, s);
    }
    return PT_OK;
}

static int
load_proxy(struct ld *ld, yaml_node_t *n, const char *rwhere, struct route *r)
{
    enum {
        UPSTREAM,
        STRIP_PREFIX,
        ADD_PREFIX,
        HOST,
        RETRIES,
        RETRY_ON,
        RETRY_BODY_LIMIT,
        TRY_TIMEOUT,
        TIMEOUT,
        NKEYS
    };
    static const char *const keys[] = {
        "upstream", "strip_prefix",     "add_prefix",  "host",   "retries",
        "retry_on", "retry_body_limit", "try_timeout", "timeout"};
    struct config *c = ld->c;
    struct field f[NKEYS] = {{NULL, NULL}};
    char where[200], what[240];
    const char *name, *s;
    const char *names[64];
    size_t nnames = 0;

    r->action = ROUTE_PROXY;
    pathf(where, sizeof(where), "%s.proxy", rwhere);
    if (n->type == YAML_SCALAR_NODE) {
        f[UPSTREAM].val = n;
    } else {
        if (fields(ld, n, where, keys, NKEYS, f) != PT_OK)
            return PT_ERR;
        if (!f[UPSTREAM].val)
            return fail(ld, n, "%s: missing required key \"upstream\"", where);
    }

    sub(what, sizeof(what), where, "upstream");
    if (want_str(ld, f[UPSTREAM].val, n == f[UPSTREAM].val ? where : what, &name) != PT_OK)
        return PT_ERR;
    for (uint32_t i = 0; i < c->nupstreams; i++) {
        if (strcmp(c->upstreams[i].name, name) == 0) {
            r->upstream = &c->upstreams[i];
            break;
        }
        if (nnames < PT_ARRAY_LEN(names))
            names[nnames++] = c->upstreams[i].name;
    }
    if (!r->upstream) {
        const char *hint = config_suggest(name, names, nnames);
        if (hint)
            return fail(ld, f[UPSTREAM].val, "unknown upstream \"%s\", did you mean \"%s\"?", name,
                        hint);
        return fail(ld, f[UPSTREAM].val, "unknown upstream \"%s\"%s", name,
                    c->nupstreams ? "" : " (no upstreams are defined)");
    }

    if (f[STRIP_PREFIX].val) {
        if (want_path(ld, f[STRIP_PREFIX].val, sub(what, sizeof(what), where, "strip_prefix"),
                      &s) != PT_OK)
            return PT_ERR;
        r->strip_prefix = pt_strdup(s);
    }
    if (f[ADD_PREFIX].val) {
        if (want_path(ld, f[ADD_PREFIX].val, sub(what, sizeof(what), where, "add_prefix"), &s) !=
            PT_OK)
            return PT_ERR;
        r->add_prefix = pt_strdup(s);
    }
    if (f[HOST].val) {
        sub(what, sizeof(what), where, "host");
        if (want_str(ld, f[HOST].val, what, &s) != PT_OK)
            return PT_ERR;
        if (!*s || has_ctl(s, false))
            return fail(ld, f[HOST].val,
                        "%s: expected preserve, upstream or a host name, got \"%s\"", what, s);
        if (strcmp(s, "upstream") == 0)
            r->host_from_server = true;
        else if (strcmp(s, "preserve") != 0)
            r->host_rewrite = pt_strdup(s);
    }
    if (f[RETRIES].val && want_u32(ld, f[RETRIES].val, sub(what, sizeof(what), where, "retries"), 0,
                                   10, &r->retries) != PT_OK)
        return PT_ERR;
    if (f[RETRY_ON].val &&
        load_retry_on(ld, f[RETRY_ON].val, sub(what, sizeof(what), where, "retry_on"), r) != PT_OK)
        return PT_ERR;
    if (f[RETRY_BODY_LIMIT].val) {
        uint64_t v;
        if (want_size(ld, f[RETRY_BODY_LIMIT].val,
                      sub(what, sizeof(what), where, "retry_body_limit"), 0, 1u << 20, &v) != PT_OK)
            return PT_ERR;
        r->retry_body_limit = (uint32_t)v;
    }
    if (f[TRY_TIMEOUT].val &&
        want_duration(ld, f[TRY_TIMEOUT].val, sub(what, sizeof(what), where, "try_timeout"), false,
                      &r->try_timeout_ms) != PT_OK)
        return PT_ERR;
    if (f[TIMEOUT].val &&
        want_duration(ld, f[TIMEOUT].val, sub(what, sizeof(what), where, "timeout"), true,
                      &r->timeout_ms) != PT_OK)
        return PT_ERR;
    return PT_OK;
}

static int
load_redirect(struct ld *ld, yaml_node_t *n, const char *rwhere, struct route *r)
{
    enum { TO, STATUS, KEEP_PATH, HTTPS, PORT, NKEYS };
    static const char *const keys[] = {"to", "status", "keep_path", "https", "port"};
    struct field f[NKEYS];
    char where[200], what[240];
    const char *s = NULL;
    uint32_t st;

    r->action = ROUTE_REDIRECT;
    pathf(where, sizeof(where), "%s.redirect", rwhere);
    if (fields(ld, n, where, keys, NKEYS, f) != PT_OK)
        return PT_ERR;
    if (f[HTTPS].val && want_bool(ld, f[HTTPS].val, sub(what, sizeof(what), where, "https"),
                                  &r->redirect_https) != PT_OK)
        return PT_ERR;
    if (r->redirect_https) {
        if (f[TO].key)
            return fail(ld, f[TO].key, "%s: give either to or https: true, not both", where);
        if (f[KEEP_PATH].key)
            return fail(ld, f[KEEP_PATH].key,
                        "%s.keep_path: applies only to \"to\" (an https redirect always keeps "
                        "the path and query)",
                        where);
        r->redirect_status = 308; /* keeps the method and body, unlike 301 */
        if (f[PORT].val) {
            uint32_t port;
            if (want_u32(ld, f[PORT].val, sub(what, sizeof(what), where, "port"), 1, 65535,
                         &port) != PT_OK)
                return PT_ERR;
            r->redirect_https_port = port == 443 ? 0 : (uint16_t)port;
        }
    } else {
        if (f[PORT].key)
            return fail(ld, f[PORT].key, "%s.port: applies only to https: true", where);
        if (!f[TO].val)
            return fail(ld, n, "%s: missing required key \"to\" (or https: true)", where);
        sub(what, sizeof(what), where, "to");
        if (want_str(ld, f[TO].val, what, &s) != PT_OK)
            return PT_ERR;
        if (!*s || has_ctl(s, false))
            return fail(ld, f[TO].val, "%s: expected a URL or path without spaces", what);
        r->redirect_to = pt_strdup(s);
    }
    if (f[STATUS].val) {
        sub(what, sizeof(what), where, "status");
        if (want_u32(ld, f[STATUS].val, what, 0, 999, &st) != PT_OK)
            return PT_ERR;
        if (st != 301 && st != 302 && st != 303 && st != 307 && st != 308)
            return fail(ld, f[STATUS].val, "%s: expected 301, 302, 303, 307 or 308, got %u", what,
                        st);
        r->redirect_status = (int)st;
    }
    if (f[KEEP_PATH].val &&
        want_bool(ld, f[KEEP_PATH].val, sub(what, sizeof(what), where, "keep_path"),
                  &r->redirect_keep_path) != PT_OK)
        return PT_ERR;
    return PT_OK;
}

static int
load_respond(struct ld *ld, yaml_node_t *n, const char *rwhere, struct route *r)
{
    enum { STATUS, BODY, CONTENT_TYPE, NKEYS };
    static const char *const keys[] = {"status", "body", "content_type"};
    struct field f[NKEYS];
    char where[200], what[240];
    const char *s = NULL;
    uint32_t st;

    r->action = ROUTE_RESPOND;
    pathf(where, sizeof(where), "%s.respond", rwhere);
    if (fields(ld, n, where, keys, NKEYS, f) != PT_OK)
        return PT_ERR;
    if (f[STATUS].val) {
        if (want_u32(ld, f[STATUS].val, sub(what, sizeof(what), where, "status"), 200, 599, &st) !=
            PT_OK)
            return PT_ERR;
        r->respond_status = (int)st;
    }
    if (f[BODY].val) {
        yaml_node_t *b = f[BODY].val;
        if (b->type != YAML_SCALAR_NODE)
            return fail(ld, b, "%s.body: expected a string, got %s", where, kind(b));
        if (strlen(sval(b)) != b->data.scalar.length)
            return fail(ld, b, "%s.body: NUL byte in value", where);
        if (!is_null(b) && (r->respond_status == 204 || r->respond_status == 304))
            return fail(ld, b, "%s.body: a %d response has no body", where, r->respond_status);
        if (!is_null(b))
            r->respond_body = pt_strdup(sval(b));
    }
    s = "text/plain";
    if (f[CONTENT_TYPE].val) {
        sub(what, sizeof(what), where, "content_type");
        if (want_str(ld, f[CONTENT_TYPE].val, what, &s) != PT_OK)
            return PT_ERR;
        if (!*s || has_ctl(s, true))
            return fail(ld, f[CONTENT_TYPE].val, "%s: expected a media type like text/html", what);
    }
    r->respond_content_type = pt_strdup(s);
    return PT_OK;
}

/* Fields whose rewriting would change how a message is framed or routed hop by hop; the proxy
 * manages them itself. */
static bool
managed_field(const char *lower)
{
    static const char *const names[] = {"connection", "content-length",  "keep-alive",
                                        "te",         "trailer",         "transfer-encoding",
                                        "upgrade",    "proxy-connection"};
    for (size_t i = 0; i < PT_ARRAY_LEN(names); i++)
        if (strcmp(lower, names[i]) == 0)
            return true;
    return false;
}

static int
add_rule(struct ld *ld, yaml_node_t *kn, yaml_node_t *vn, const char *what, bool request,
         enum header_op op, struct header_rules *h)
{
    struct header_rule *hr = &h->v[h->n];
    char *lower;
    const char *v;

    if (want_field_name(ld, kn, what, false, &hr->name) != PT_OK)
        return PT_ERR;
    hr->op = op;
    h->n++;
    lower = pt_strdup(hr->name);
    lowercase(lower);
    if (managed_field(lower) || (request && strcmp(lower, "host") == 0)) {
        int rc = fail(ld, kn, "%s: \"%s\" cannot be changed by header rules%s", what, hr->name,
                      strcmp(lower, "host") == 0 ? " (use proxy: {host: ...})" : "");
        free(lower);
        return rc;
    }
    free(lower);
    if (!vn)
        return PT_OK;
    if (want_str(ld, vn, what, &v) != PT_OK)
        return PT_ERR;
    if (has_ctl(v, true))
        return fail(ld, vn, "%s: control characters are not allowed in a header value", what);
    hr->value = pt_strdup(v);
    return PT_OK;
}

static int
load_header_rules(struct ld *ld, yaml_node_t *n, const char *where, bool request,
                  struct header_rules *h)
{
    enum { ADD, SET, REMOVE, NKEYS };
    static const char *const keys[] = {"add", "set", "remove"};
    struct field f[NKEYS];
    char what[240];
    size_t total = 0;

    if (fields(ld, n, where, keys, NKEYS, f) != PT_OK)
        return PT_ERR;
    for (int k = ADD; k <= SET; k++) {
        if (!f[k].val)
            continue;
        sub(what, sizeof(what), where, keys[k]);
        if (want_map(ld, f[k].val, what) != PT_OK ||
            check_dups(ld, f[k].val, what, "header", k == SET) != PT_OK)
            return PT_ERR;
        total += map_len(f[k].val);
    }
    if (f[REMOVE].val) {
        yaml_node_t *rm = f[REMOVE].val;
        if (rm->type != YAML_SEQUENCE_NODE && (rm->type != YAML_SCALAR_NODE || is_null(rm)))
            return fail(ld, rm, "%s.remove: expected a list of header names, got %s", where,
                        kind(rm));
        total += rm->type == YAML_SEQUENCE_NODE ? seq_len(rm) : 1;
    }
    h->v = total ? pt_calloc(total, sizeof(*h->v)) : NULL;

    /* Applied in this order at run time: remove, then set, then add. */
    if (f[REMOVE].val) {
        yaml_node_t *rm = f[REMOVE].val;
        bool list = rm->type == YAML_SEQUENCE_NODE;
        size_t count = list ? seq_len(rm) : 1;
        sub(what, sizeof(what), where, "remove");
        for (size_t i = 0; i < count; i++)
            if (add_rule(ld, list ? seq_at(ld, rm, i) : rm, NULL, what, request, HEADER_REMOVE,
                         h) != PT_OK)
                return PT_ERR;
    }
    for (int k = SET; k >= ADD; k--) {
        yaml_node_t *m = f[k].val;
        if (!m)
            continue;
        sub(what, sizeof(what), where, keys[k]);
        for (size_t i = 0; i < map_len(m); i++) {
            yaml_node_pair_t *p = &m->data.mapping.pairs.start[i];
            if (add_rule(ld, node(ld, p->key), node(ld, p->value), what, request,
                         k == SET ? HEADER_SET : HEADER_ADD, h) != PT_OK)
                return PT_ERR;
        }
    }
    return PT_OK;
}

static int
load_route(struct ld *ld, yaml_node_t *n, size_t index, struct route *r)
{
    enum { NAME, MATCH, PROXY, REDIRECT, RESPOND, REQUEST_HEADERS, RESPONSE_HEADERS, NKEYS };
    static const char *const keys[] = {"name",    "match",           "proxy",           "redirect",
                                       "respond", "request_headers", "response_headers"};
    struct config *c = ld->c;
    struct field f[NKEYS];
    char where[200], auto_name[32];
    yaml_node_t *action = NULL;

    pathf(auto_name, sizeof(auto_name), "routes[%zu]", index);
    config_route_defaults(r);
    if (n->type != YAML_MAPPING_NODE)
        return fail(ld, n, "%s: expected a mapping, got %s", auto_name, kind(n));
    if (fields(ld, n, auto_name, keys, NKEYS, f) != PT_OK)
        return PT_ERR;

    if (f[NAME].val) {
        const char *s;
        if (want_str(ld, f[NAME].val, sub(where, sizeof(where), auto_name, "name"), &s) != PT_OK)
            return PT_ERR;
        if (!*s || has_ctl(s, true))
            return fail(ld, f[NAME].val, "%s: must be a non-empty name without control characters",
                        where);
        r->name = pt_strdup(s);
    } else {
        r->name = pt_strdup(auto_name);
    }
    for (size_t i = 0; i < index; i++)
        if (strcmp(c->routes[i].name, r->name) == 0)
            return fail(ld, f[NAME].val ? f[NAME].val : n, "duplicate route name \"%s\"", r->name);
    pathf(where, sizeof(where), "%s", auto_name);

    for (int k = PROXY; k <= RESPOND; k++) {
        if (!f[k].val)
            continue;
        if (action)
            return fail(ld, f[k].key,
                        "%s: a route takes exactly one action, found \"%s\" and \"%s\"", where,
                        sval(action), keys[k]);
        action = f[k].key;
    }
    if (!action)
        return fail(ld, n, "%s: a route needs one action: proxy, redirect or respond", where);

    if (f[MATCH].val && load_match(ld, f[MATCH].val, where, r) != PT_OK)
        return PT_ERR;
    if (f[PROXY].val && load_proxy(ld, f[PROXY].val, where, r) != PT_OK)
        return PT_ERR;
    if (f[REDIRECT].val && load_redirect(ld, f[REDIRECT].val, where, r) != PT_OK)
        return PT_ERR;
    if (f[RESPOND].val && load_respond(ld, f[RESPOND].val, where, r) != PT_OK)
        return PT_ERR;
    if (f[REQUEST_HEADERS].val) {
        char w[240];
        if (r->action != ROUTE_PROXY)
            return fail(ld, f[REQUEST_HEADERS].key,
                        "%s: request_headers apply only to proxy routes", where);
        if (load_header_rules(ld, f[REQUEST_HEADERS].val,
                              sub(w, sizeof(w), where, "request_headers"), true,
                              &r->request_headers) != PT_OK)
            return PT_ERR;
    }
    if (f[RESPONSE_HEADERS].val) {
        char w[240];
        if (load_header_rules(ld, f[RESPONSE_HEADERS].val,
                              sub(w, sizeof(w), where, "response_headers"), false,
                              &r->response_headers) != PT_OK)
            return PT_ERR;
    }
    return PT_OK;
}

static int
load_routes(struct ld *ld, yaml_node_t *n)
{
    struct config *c = ld->c;
    size_t count;

    if (n->type != YAML_SEQUENCE_NODE)
        return fail(ld, n, "routes: expected a list of routes, got %s", kind(n));
    count = seq_len(n);
    c->routes = count ? pt_calloc(count, sizeof(*c->routes)) : NULL;
    for (size_t i = 0; i < count; i++) {
        /* Count the route first so config_free releases it even when it fails half-built. */
        c->nroutes++;
        if (load_route(ld, seq_at(ld, n, i), i, &c->routes[i]) != PT_OK)
            return PT_ERR;
    }
    return PT_OK;
}

static void
implicit_route(struct config *c)
{
    struct route *r;

    c->routes = pt_calloc(1, sizeof(*c->routes));
    c->nroutes = 1;
    r = &c->routes[0];
    config_route_defaults(r);
    r->name = pt_strdup("default");
    r->action = ROUTE_PROXY;
    r->upstream = &c->upstreams[0];
}

/* ---- document ---- */

static int
load_root(struct ld *ld, yaml_node_t *root)
{
    enum {
        WORKERS,
        LISTEN,
        TIMEOUTS,
        LIMITS,
        HTTP2,
        UPSTREAMS,
        ROUTES,
        PROXY_HEADERS,
        HIDE_HEADERS,
        ACCESS_LOG,
        ERROR_LOG,
        ADMIN,
        NKEYS
    };
    static const char *const keys[] = {"workers",      "listen",     "timeouts",  "limits",
                                       "http2",        "upstreams",  "routes",    "proxy_headers",
                                       "hide_headers", "access_log", "error_log", "admin"};
    struct field f[NKEYS];

    if (!root)
        return fail(ld, NULL, "missing required key \"listen\" (the configuration is empty)");
    if (root->type != YAML_MAPPING_NODE)
        return fail(ld, root, "the configuration must be a mapping of keys, got %s", kind(root));
    if (fields(ld, root, "", keys, NKEYS, f) != PT_OK)
        return PT_ERR;
    if (f[WORKERS].val && load_workers(ld, f[WORKERS].val) != PT_OK)
        return PT_ERR;
    if (!f[LISTEN].val)
        return fail(ld, root, "missing required key \"listen\"");
    if (load_listen(ld, f[LISTEN].val) != PT_OK)
        return PT_ERR;
    if (f[ADMIN].val && load_admin(ld, f[ADMIN].val) != PT_OK)
        return PT_ERR;
    if (f[TIMEOUTS].val && load_timeouts(ld, f[TIMEOUTS].val) != PT_OK)
        return PT_ERR;
    if (f[LIMITS].val && load_limits(ld, f[LIMITS].val) != PT_OK)
        return PT_ERR;
    if (f[HTTP2].val && load_http2(ld, f[HTTP2].val) != PT_OK)
        return PT_ERR;
    if (f[PROXY_HEADERS].val && load_proxy_headers(ld, f[PROXY_HEADERS].val) != PT_OK)
        return PT_ERR;
    if (f[HIDE_HEADERS].val && load_hide_headers(ld, f[HIDE_HEADERS].val) != PT_OK)
        return PT_ERR;
    if (f[ACCESS_LOG].val && load_access_log(ld, f[ACCESS_LOG].val) != PT_OK)
        return PT_ERR;
    if (f[ERROR_LOG].val && load_error_log(ld, f[ERROR_LOG].val) != PT_OK)
        return PT_ERR;
    if (f[UPSTREAMS].val && load_upstreams(ld, f[UPSTREAMS].val) != PT_OK)
        return PT_ERR;
    if (f[ROUTES].val) {
        if (load_routes(ld, f[ROUTES].val) != PT_OK)
            return PT_ERR;
    } else if (ld->c->nupstreams == 1) {
        implicit_route(ld->c);
    }
    if (ld->c->workers == 0)
        ld->c->workers = config_cpu_count();
    return PT_OK;
}

/* Formats a libyaml error. Reader errors (bad encoding) carry a byte offset, not a mark. */
static void
parser_error(yaml_parser_t *p, const char *yaml, size_t len, const char *name, char *err,
             size_t errlen)
{
    size_t line = p->problem_mark.line + 1, col = p->problem_mark.column + 1;
    const char *problem = p->problem ? p->problem : "cannot parse the YAML";

    if (p->error == YAML_MEMORY_ERROR) {
        snprintf(err, errlen, "%s: out of memory while parsing", name);
        return;
    }
    if (p->error == YAML_READER_ERROR) {
        size_t off = PT_MIN(p->problem_offset, len);
        line = 1;
        col = 1;
        for (size_t i = 0; i < off; i++) {
            if (yaml[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
    }
    if (p->context && p->error != YAML_READER_ERROR)
        snprintf(err, errlen, "%s:%zu:%zu: %s (%s at %zu:%zu)", name, line, col, problem,
                 p->context, p->context_mark.line + 1, p->context_mark.column + 1);
    else
        snprintf(err, errlen, "%s:%zu:%zu: %s", name, line, col, problem);
}

int
config_load_string(const char *yaml, size_t len, const char *name, struct config **out, char *err,
                   size_t errlen)
{
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    struct config *c = NULL;
    struct ld ld;
    int rc = PT_ERR;
    bool have_doc = false;
    char dummy[1];

    *out = NULL;
    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "%s: out of memory", name);
        return PT_ERR;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        parser_error(&parser, yaml, len, name, err, errlen);
        goto out;
    }
    have_doc = true;
    /* A second document would be silently ignored; say so instead. */
    if (yaml_document_get_root_node(&doc)) {
        if (!yaml_parser_load(&parser, &extra)) {
            parser_error(&parser, yaml, len, name, err, errlen);
            goto out;
        }
        yaml_node_t *r2 = yaml_document_get_root_node(&extra);
        if (r2) {
            snprintf(err, errlen, "%s:%zu:%zu: only one YAML document is allowed", name,
                     r2->start_mark.line + 1, r2->start_mark.column + 1);
            yaml_document_delete(&extra);
            goto out;
        }
        yaml_document_delete(&extra);
    }

    c = pt_calloc(1, sizeof(*c));
    config_defaults(c);
    c->source = pt_strdup(name);
    ld = (struct ld){.name = name, .doc = &doc, .c = c, .err = err, .errlen = errlen};
    {
        /* Paths in the file are relative to its directory ("-": the working directory). */
        const char *slash = strrchr(name, '/');
        if (slash)
            ld.dir = pt_strndup(name, slash == name ? 1 : (size_t)(slash - name));
    }
    if (load_root(&ld, yaml_document_get_root_node(&doc)) != PT_OK) {
        free(ld.dir);
        goto out;
    }
    free(ld.dir);
    *out = c;
    c = NULL;
    rc = PT_OK;
out:
    config_free(c);
    if (have_doc)
        yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}

int
config_load_file(const char *path, struct config **out, char *err, size_t errlen)
{
    bool use_stdin = strcmp(path, "-") == 0;
    FILE *f = use_stdin ? stdin : fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc;

    *out = NULL;
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return PT_ERR;
    }
    for (;;) {
        size_t n;
        if (len == cap) {
            if (cap >= MAX_CONFIG_BYTES) {
                snprintf(err, errlen, "%s: file too large (more than %u bytes)", path,
                         MAX_CONFIG_BYTES);
                rc = PT_ERR;
                goto out;
            }
            cap = cap ? cap * 2 : 16384;
            buf = pt_realloc(buf, cap);
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) {
                snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
                rc = PT_ERR;
                goto out;
            }
            break;
        }
    }
    rc = config_load_string(buf, len, path, out, err, errlen);
out:
    free(buf);
    if (!use_stdin)
        fclose(f);
    return rc;
}
