/* Process start: command line, configuration, logging, worker threads, and the main thread's
 * signal loop (SIGTERM/SIGINT graceful stop, SIGQUIT fast stop, SIGUSR1 log reopen). */
#include "config/config.h"
#include "core/log.h"
#include "lb/control.h"
#include "lb/lb.h"
#include "proxy/upstream.h"
#include "tls/tls.h"
#include "proxy/worker.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLI 64

static void
usage(FILE *f)
{
    fprintf(f,
            "Usage: portico -c FILE            run from a YAML configuration\n"
            "       portico -t -c FILE         check a configuration and exit\n"
            "       portico --listen ADDR --upstream http://HOST:PORT [--upstream ...]\n"
            "               [--listen-tls ADDR --cert PATH --key PATH]\n"
            "               [--workers N] [--access-log PATH|off] [--log-level LEVEL]\n"
            "               [--balance NAME] [--health-check PATH] [--admin ADDR]\n"
            "       portico --version\n"
            "\n"
            "  -c, --config FILE    configuration file (docs/configuration.md)\n"
            "  -t, --test           validate the configuration, print errors, exit 0 or 1\n"
            "  --listen ADDR        listen address, e.g. 127.0.0.1:8080, [::1]:8080, or\n"
            "                       8080 alone: every IPv4 address (repeatable)\n"
            "  --listen-tls ADDR    quick mode: TLS listen address, HTTP/2 offered (repeatable;\n"
            "                       needs --cert and --key)\n"
            "  --cert PATH          quick mode: PEM certificate (then its chain) for --listen-tls\n"
            "  --key PATH           quick mode: PEM private key of --cert\n"
            "  --upstream URL       upstream server, e.g. http://127.0.0.1:9000 (repeatable:\n"
            "                       several form one pool, see --balance)\n"
            "  --workers N          worker threads (default: one per core)\n"
            "  --access-log PATH    stdout (default), stderr, off or a file\n"
            "  --log-level LEVEL    error, warn, info (default) or debug\n"
            "  --admin ADDR         serve the status document on ADDR (with -c: overrides admin)\n"
            "  --balance NAME       quick mode: round_robin (default), least_conn, random_two,\n"
            "                       ewma, hash (client address) or sticky (cookie)\n"
            "  --health-check PATH  quick mode: active health checks with GET PATH\n"
            "  -V, --version        print the version\n");
}

static void
free_lb(struct lb *lb)
{
    for (uint32_t i = 0; i < lb->npools; i++)
        tls_client_free(lb->pools[i].tls);
    lb_free(lb);
}

static void
free_tls(struct tls_server **tls, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        tls_server_free(tls[i]);
    free(tls);
}

/* Whether pool <up> has https:// servers (and so needs a TLS client context). */
static bool
has_https(const struct config_upstream *up)
{
    for (uint32_t j = 0; j < up->nservers; j++)
        if (up->servers[j].addr.https)
            return true;
    return false;
}

/* An error of open_tls: on stderr, and in the error log once that is started. */
static void tls_fail(bool logged, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
tls_fail(bool logged, const char *fmt, ...)
{
    char msg[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (logged)
        log_error("%s", msg);
    fprintf(stderr, "portico: %s\n", msg);
}

/* Loads every TLS context the configuration names: one per TLS listener into tls[] (nlistens
 * slots), and one client context per pool with https:// servers into lb's pools; with lb NULL
 * (-t) each client context is made and freed at once. Returns PT_OK, or PT_ERR with the error
 * said (tls_fail); what was made stays for the caller to free. */
static int
open_tls(const struct config *cfg, struct tls_server **tls, struct lb *lb, bool logged)
{
    char err[512];
    for (uint32_t i = 0; cfg->listen_tls && i < cfg->nlistens; i++) {
        if (!cfg->listen_tls[i])
            continue;
        tls[i] = tls_server_new(cfg->listen_tls[i], err, sizeof(err));
        if (!tls[i]) {
            tls_fail(logged, "listen %s: %s", cfg->listens[i].text, err);
            return PT_ERR;
        }
    }
    for (uint32_t i = 0; i < cfg->nupstreams; i++) {
        const struct config_upstream *up = &cfg->upstreams[i];
        if (!has_https(up))
            continue;
        struct tls_client *t =
            tls_client_new(&up->tls, lb ? upconn_on_session : NULL, err, sizeof(err));
        if (!t) {
            tls_fail(logged, "upstream %s: %s", up->name, err);
            return PT_ERR;
        }
        if (lb)
            lb->pools[i].tls = t;
        else
            tls_client_free(t);
    }
    return PT_OK;
}

int
main(int argc, char **argv)
{
    const char *config_path = NULL, *access_log = NULL, *log_level_s = NULL;
    const char *admin = NULL, *health_check = NULL, *balance = NULL;
    const char *cert = NULL, *key = NULL;
    const char *listens[MAX_CLI], *listens_tls[MAX_CLI], *upstreams[MAX_CLI];
    uint32_t nlistens = 0, nlistens_tls = 0, nupstreams = 0, workers = 0;
    bool test_only = false;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE()                                                                               \
    do {                                                                                           \
        if (!v) {                                                                                  \
            fprintf(stderr, "portico: %s needs a value\n", a);                                     \
            return 1;                                                                              \
        }                                                                                          \
        i++;                                                                                       \
    } while (0)
        if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
            NEED_VALUE();
            config_path = v;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--test")) {
            test_only = true;
        } else if (!strcmp(a, "--listen")) {
            NEED_VALUE();
            if (nlistens == MAX_CLI) {
                fprintf(stderr, "portico: too many --listen\n");
                return 1;
            }
            listens[nlistens++] = v;
        } else if (!strcmp(a, "--listen-tls")) {
            NEED_VALUE();
            if (nlistens_tls == MAX_CLI) {
                fprintf(stderr, "portico: too many --listen-tls\n");
                return 1;
            }
            listens_tls[nlistens_tls++] = v;
        } else if (!strcmp(a, "--cert")) {
            NEED_VALUE();
            cert = v;
        } else if (!strcmp(a, "--key")) {
            NEED_VALUE();
            key = v;
        } else if (!strcmp(a, "--upstream")) {
            NEED_VALUE();
            if (nupstreams == MAX_CLI) {
                fprintf(stderr, "portico: too many --upstream\n");
                return 1;
            }
            upstreams[nupstreams++] = v;
        } else if (!strcmp(a, "--workers")) {
            NEED_VALUE();
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > 1024) {
                fprintf(stderr, "portico: --workers \"%s\": expected a number from 1 to 1024\n", v);
                return 1;
            }
            workers = (uint32_t)n;
        } else if (!strcmp(a, "--access-log")) {
            NEED_VALUE();
            access_log = v;
        } else if (!strcmp(a, "--log-level")) {
            NEED_VALUE();
            log_level_s = v;
        } else if (!strcmp(a, "--admin")) {
            NEED_VALUE();
            admin = v;
        } else if (!strcmp(a, "--health-check")) {
            NEED_VALUE();
            health_check = v;
        } else if (!strcmp(a, "--balance")) {
            NEED_VALUE();
            balance = v;
        } else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
            printf("portico %s\n", PT_VERSION);
            return 0;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "portico: unknown argument \"%s\"\n\n", a);
            usage(stderr);
            return 1;
        }
#undef NEED_VALUE
    }

    char err[1024] = "";
    struct config *cfg = NULL;
    if (config_path) {
        if (nlistens || nlistens_tls || nupstreams) {
            fprintf(stderr, "portico: use either -c FILE or --listen/--listen-tls/--upstream, not "
                            "both\n");
            return 1;
        }
        if (health_check || balance || cert || key) {
            const char *flag = balance        ? "--balance"
                               : health_check ? "--health-check"
                               : cert         ? "--cert"
                                              : "--key";
            const char *file_key = balance        ? "balance:"
                                   : health_check ? "health:"
                                                  : "a listen entry with tls:";
            fprintf(stderr, "portico: %s is a quick-mode option; with -c FILE use %s in the file\n",
                    flag, file_key);
            return 1;
        }
        if (config_load_file(config_path, &cfg, err, sizeof(err)) != PT_OK) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        if (workers)
            cfg->workers = workers;
        if (admin && config_set_admin(cfg, admin, err, sizeof(err)) != PT_OK) {
            fprintf(stderr, "portico: --admin \"%s\": %s\n", admin, err);
            config_free(cfg);
            return 1;
        }
    } else if (nlistens || nlistens_tls || nupstreams || cert || key) {
        if ((!nlistens && !nlistens_tls) || !nupstreams) {
            fprintf(stderr, "portico: quick mode needs --listen (or --listen-tls) and at least "
                            "one --upstream\n");
            return 1;
        }
        const struct config_cli opts = {
            .listens = listens,
            .nlistens = nlistens,
            .listens_tls = listens_tls,
            .nlistens_tls = nlistens_tls,
            .cert = cert,
            .key = key,
            .upstreams = upstreams,
            .nupstreams = nupstreams,
            .workers = workers,
            .admin = admin,
            .health_check = health_check,
            .balance = balance,
        };
        if (config_from_cli_opts(&opts, &cfg, err, sizeof(err)) != PT_OK) {
            fprintf(stderr, "portico: %s\n", err);
            return 1;
        }
    } else {
        usage(stderr);
        return 1;
    }
    if (access_log) {
        /* The loader's default is a static string; anything else is the config's to free. */
        struct config d;
        config_defaults(&d);
        if (cfg->access_log != d.access_log)
            free(cfg->access_log);
        cfg->access_log = pt_strdup(access_log);
    }
    if (log_level_s) {
        int lv = log_level_parse(log_level_s);
        if (lv < 0) {
            fprintf(stderr, "portico: --log-level \"%s\": expected error, warn, info or debug\n",
                    log_level_s);
            config_free(cfg);
            return 1;
        }
        cfg->error_log_level = lv;
    }
    if (test_only) {
        /* the TLS material too (certificates, keys, chains, OCSP responses, CA bundles), as
         * the start would load it */
        struct tls_server **tls = pt_calloc(cfg->nlistens, sizeof(*tls));
        int trc = open_tls(cfg, tls, NULL, false) == PT_OK ? 0 : 1;
        free_tls(tls, cfg->nlistens);
        if (trc == 0)
            printf("%s: configuration is valid\n", cfg->source ? cfg->source : "configuration");
        config_free(cfg);
        return trc;
    }

    /* Signals are taken by the main thread only (sigwait); workers inherit the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (log_start(cfg->error_log, cfg->error_log_level, cfg->access_log,
                  cfg->access_log_format == LOG_FORMAT_JSON, err, sizeof(err)) != PT_OK) {
        fprintf(stderr, "portico: %s\n", err);
        config_free(cfg);
        return 1;
    }

    int rc = 0;
    uint32_t nw = cfg->workers ? cfg->workers : 1;
    /* TLS contexts, one per TLS listener, shared by the workers, and one per pool with
     * https:// servers. */
    struct tls_server **tls = pt_calloc(cfg->nlistens, sizeof(*tls));
    struct lb *lb = lb_new(cfg);
    if (open_tls(cfg, tls, lb, true) != PT_OK) {
        free_lb(lb);
        free_tls(tls, cfg->nlistens);
        log_stop();
        config_free(cfg);
        return 1;
    }
    struct worker **ws = pt_calloc(nw, sizeof(*ws));
    for (uint32_t i = 0; i < nw; i++) {
        ws[i] = worker_new(i, cfg, lb, tls, err, sizeof(err));
        if (!ws[i]) {
            log_error("%s", err);
            for (uint32_t k = 0; k < i; k++)
                worker_free(ws[k]);
            free(ws);
            free_lb(lb);
            free_tls(tls, cfg->nlistens);
            log_stop();
            fprintf(stderr, "portico: %s\n", err);
            config_free(cfg);
            return 1;
        }
    }
    for (uint32_t i = 0; i < nw; i++) {
        if (worker_start(ws[i]) != PT_OK) {
            log_error("cannot start worker %u", i);
            atomic_store(&worker_stop_requested, 1);
            for (uint32_t k = 0; k < i; k++)
                worker_wake(ws[k]);
            for (uint32_t k = 0; k < i; k++)
                worker_join(ws[k]);
            for (uint32_t k = 0; k < nw; k++)
                worker_free(ws[k]);
            free(ws);
            free_lb(lb);
            free_tls(tls, cfg->nlistens);
            log_stop();
            config_free(cfg);
            return 1;
        }
    }
    struct control *ctl = control_start(lb, cfg, err, sizeof(err));
    if (!ctl) {
        log_error("%s", err);
        fprintf(stderr, "portico: %s\n", err);
        atomic_store(&worker_stop_requested, 1);
        cfg->timeouts.drain_ms = 0;
        rc = 1;
        goto stop;
    }
    for (uint32_t i = 0; i < cfg->nlistens; i++)
        log_info("portico %s listening on %s (%u worker%s)", PT_VERSION, cfg->listens[i].text, nw,
                 nw == 1 ? "" : "s");
    if (cfg->admin)
        log_info("status document on http://%s/status", cfg->admin->text);

    for (;;) {
        int sig = 0;
        /* wake once a second for timed work: TLS session ticket key rotation */
        struct timespec tick = {.tv_sec = 1, .tv_nsec = 0};
        sig = sigtimedwait(&set, NULL, &tick);
        if (sig < 0) {
            for (uint32_t i = 0; i < cfg->nlistens; i++)
                if (tls[i])
                    tls_server_tick(tls[i]);
            continue;
        }
        if (sig == SIGUSR1) {
            if (log_reconfigure(cfg->error_log, cfg->error_log_level, cfg->access_log,
                                cfg->access_log_format == LOG_FORMAT_JSON, err,
                                sizeof(err)) != PT_OK)
                log_error("reopening logs: %s", err);
            else
                log_info("log files reopened");
            continue;
        }
        if (sig == SIGHUP) {
            /* Certificates and keys are read again; a bad one keeps the old in use. */
            for (uint32_t i = 0; i < cfg->nlistens; i++) {
                if (!tls[i])
                    continue;
                if (tls_server_reload(tls[i], err, sizeof(err)) == PT_OK)
                    log_info("listen %s: certificates reloaded", cfg->listens[i].text);
                else
                    log_error("listen %s: certificates not reloaded, the old ones stay in "
                              "use: %s",
                              cfg->listens[i].text, err);
            }
            log_warn("SIGHUP: reloading the rest of the configuration is not supported yet; "
                     "still running on %s",
                     cfg->source ? cfg->source : "the current configuration");
            /* HTTP/2 clients get a graceful GOAWAY and reconnect, to what was reloaded */
            atomic_fetch_add(&worker_reload_gen, 1);
            for (uint32_t i = 0; i < nw; i++)
                worker_wake(ws[i]);
            continue;
        }
        log_info("%s: stopping%s", strsignal(sig),
                 sig == SIGQUIT ? " now" : " after in-flight requests");
        if (sig == SIGQUIT) {
            /* fast stop: no drain */
            cfg->timeouts.drain_ms = 0;
        }
        break;
    }
stop:
    atomic_store(&worker_stop_requested, 1);
    for (uint32_t i = 0; i < nw; i++)
        worker_wake(ws[i]);
    for (uint32_t i = 0; i < nw; i++)
        worker_join(ws[i]);
    control_stop(ctl);
    for (uint32_t i = 0; i < nw; i++)
        worker_free(ws[i]);
    free(ws);
    free_lb(lb);
    free_tls(tls, cfg->nlistens);
    log_info("stopped");
    log_stop();
    config_free(cfg);
    return rc;
}
