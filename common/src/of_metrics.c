/*
 * of_metrics.c - the process-wide Prometheus registry (of_metrics.h).
 *
 * One mutex guards everything: families keep their creation order and
 * series their first-use order, so the rendered text is deterministic.
 * Histogram buckets are stored per bucket and made cumulative on output.
 */
#include "of_metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "of_log.h"
#include "of_oom.h"

const double of_metrics_latency_buckets[] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const size_t of_metrics_latency_nbuckets =
    sizeof of_metrics_latency_buckets / sizeof of_metrics_latency_buckets[0];

typedef enum kind { K_COUNTER, K_GAUGE, K_HISTOGRAM, K_GAUGE_FN } kind;

typedef struct series {
    struct series *next;
    char **values;     /* nlabels strdup'ed label values */
    double value;      /* counter/gauge */
    double sum;        /* histogram */
    unsigned long long count;
    unsigned long long *bucket; /* nbuckets + 1 (+Inf), non-cumulative */
} series;

struct of_metric {
    struct of_metric *next;
    char *name, *help;
    kind kind;
    char **labels;
    size_t nlabels;
    double *buckets;
    size_t nbuckets;
    series *first, *last;
    double (*fn)(void *ud);
    void *ud;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static of_metric *reg_first, *reg_last; /* guarded by reg_mu */

/* Set-up errors are programming errors: say so and stop. */
static void die(const char *fmt, ...) OF_PRINTF(1, 2);
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("of_metrics: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

static void *xcalloc(size_t n, size_t sz)
{
    return of_xcalloc(n, sz, "a metric");
}

static char *xstrdup(const char *s)
{
    return of_xstrdup(s ? s : "", "a metric");
}

static size_t count_list(const char *const *l)
{
    size_t n = 0;
    while (l && l[n])
        n++;
    return n;
}

static bool valid_name(const char *s)
{
    if (strncmp(s, "orderflow_", 10) != 0)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '_' || *p == ':'))
            return false;
    return true;
}

/* Finds a family by name; caller holds reg_mu. */
static of_metric *find_family(const char *name)
{
    for (of_metric *m = reg_first; m; m = m->next)
        if (strcmp(m->name, name) == 0)
            return m;
    return NULL;
}

static void free_series(const of_metric *m, series *s)
{
    for (size_t i = 0; i < m->nlabels; i++)
        free(s->values[i]);
    free(s->values);
    free(s->bucket);
    free(s);
}

/* Finds or creates the series with these label values; caller holds
 * reg_mu. NULL when the number of values does not match. */
static series *get_series(of_metric *m, const char *const *values)
{
    if (count_list(values) != m->nlabels)
        return NULL;
    for (series *s = m->first; s; s = s->next) {
        size_t i = 0;
        while (i < m->nlabels && strcmp(s->values[i], values[i]) == 0)
            i++;
        if (i == m->nlabels)
            return s;
    }
    series *s = xcalloc(1, sizeof *s);
    s->values = xcalloc(m->nlabels, sizeof *s->values);
    for (size_t i = 0; i < m->nlabels; i++)
        s->values[i] = xstrdup(values[i]);
    if (m->kind == K_HISTOGRAM)
        s->bucket = xcalloc(m->nbuckets + 1, sizeof *s->bucket);
    if (m->last)
        m->last->next = s;
    else
        m->first = s;
    m->last = s;
    return s;
}

static of_metric *create(const char *name, const char *help, kind k,
                         const char *const *labels, const double *buckets,
                         size_t nbuckets)
{
    if (name == NULL || !valid_name(name))
        die("bad metric name '%s' (must match orderflow_[a-zA-Z0-9_:]*)",
            name ? name : "(null)");
    pthread_mutex_lock(&reg_mu);
    of_metric *m = find_family(name);
    if (m != NULL) {
        if (m->kind != k || m->nlabels != count_list(labels))
            die("metric '%s' registered twice with different shapes", name);
        pthread_mutex_unlock(&reg_mu);
        return m;
    }
    m = xcalloc(1, sizeof *m);
    m->name = xstrdup(name);
    m->help = xstrdup(help);
    m->kind = k;
    m->nlabels = count_list(labels);
    m->labels = xcalloc(m->nlabels, sizeof *m->labels);
    for (size_t i = 0; i < m->nlabels; i++)
        m->labels[i] = xstrdup(labels[i]);
    if (k == K_HISTOGRAM) {
        m->nbuckets = nbuckets;
        m->buckets = xcalloc(nbuckets, sizeof *m->buckets);
        for (size_t i = 0; i < nbuckets; i++) {
            if (i > 0 && !(buckets[i] > buckets[i - 1]))
                die("metric '%s': buckets must increase", name);
            m->buckets[i] = buckets[i];
        }
    }
    if (m->nlabels == 0 && k != K_GAUGE_FN)
        get_series(m, OF_NO_LABELS); /* unlabelled series show 0 at once */
    if (reg_last)
        reg_last->next = m;
    else
        reg_first = m;
    reg_last = m;
    pthread_mutex_unlock(&reg_mu);
    return m;
}

of_metric *of_metrics_counter(const char *name, const char *help,
                              const char *const *labels)
{
    return create(name, help, K_COUNTER, labels, NULL, 0);
}

of_metric *of_metrics_gauge(const char *name, const char *help,
                            const char *const *labels)
{
    return create(name, help, K_GAUGE, labels, NULL, 0);
}

of_metric *of_metrics_histogram(const char *name, const char *help,
                                const char *const *labels,
                                const double *buckets, size_t nbuckets)
{
    return create(name, help, K_HISTOGRAM, labels, buckets, nbuckets);
}

/* Registering the same name again replaces the callback. */
void of_metrics_gauge_fn(const char *name, const char *help,
                         double (*fn)(void *ud), void *ud)
{
    of_metric *m = create(name, help, K_GAUGE_FN, OF_NO_LABELS, NULL, 0);
    pthread_mutex_lock(&reg_mu);
    m->fn = fn;
    m->ud = ud;
    pthread_mutex_unlock(&reg_mu);
}

/* Shared body of add/set/observe: looks the series up under the lock and
 * applies op. A label-count mismatch is a caller bug: warned, ignored. */
typedef enum op { OP_ADD, OP_SET, OP_OBSERVE } op;

static void update(of_metric *m, op o, double v, const char *const *values)
{
    if (m == NULL)
        return;
    bool mismatch = false;
    pthread_mutex_lock(&reg_mu);
    series *s = m->kind == K_GAUGE_FN ? NULL : get_series(m, values);
    if (s == NULL) {
        mismatch = true;
    } else if (m->kind == K_HISTOGRAM && o == OP_OBSERVE) {
        size_t b = 0;
        while (b < m->nbuckets && !(v <= m->buckets[b]))
            b++;
        s->bucket[b]++;
        s->count++;
        s->sum += v;
    } else if (m->kind == K_COUNTER && o == OP_ADD && v >= 0) {
        s->value += v;
    } else if (m->kind == K_GAUGE && o == OP_ADD) {
        s->value += v;
    } else if ((m->kind == K_GAUGE || m->kind == K_COUNTER) && o == OP_SET) {
        s->value = v;
    } else {
        mismatch = true;
    }
    pthread_mutex_unlock(&reg_mu);
    if (mismatch)
        of_log(OF_LOG_WARN, OF_KV("metric", m->name),
               "metric update ignored: wrong operation or label count");
}

void of_metric_add(of_metric *m, double v, const char *const *values)
{
    update(m, OP_ADD, v, values);
}

void of_metric_set(of_metric *m, double v, const char *const *values)
{
    update(m, OP_SET, v, values);
}

void of_metric_observe(of_metric *m, double v, const char *const *values)
{
    update(m, OP_OBSERVE, v, values);
}

double of_metric_value(of_metric *m, const char *const *values)
{
    if (m == NULL)
        return 0;
    double v = 0;
    pthread_mutex_lock(&reg_mu);
    if (m->kind == K_GAUGE_FN) {
        v = m->fn ? m->fn(m->ud) : 0;
    } else if (count_list(values) == m->nlabels) {
        for (series *s = m->first; s; s = s->next) {
            size_t i = 0;
            while (i < m->nlabels && strcmp(s->values[i], values[i]) == 0)
                i++;
            if (i == m->nlabels) {
                v = m->kind == K_HISTOGRAM ? (double)s->count : s->value;
                break;
            }
        }
    }
    pthread_mutex_unlock(&reg_mu);
    return v;
}

/* ------------------------------------------------------------------ */
/* Rendering                                                          */
/* ------------------------------------------------------------------ */

typedef struct buf {
    char *p;
    size_t len, cap;
    bool oom;
} buf;

static void b_put(buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void b_str(buf *b, const char *s)
{
    b_put(b, s, strlen(s));
}

/* Escapes '\\', '\n' and, for label values, '"'. */
static void b_escaped(buf *b, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            b_str(b, "\\\\");
        else if (*s == '\n')
            b_str(b, "\\n");
        else if (*s == '"' && quote)
            b_str(b, "\\\"");
        else
            b_put(b, s, 1);
    }
}

/* Shortest text that reads back as the same double; Prometheus spellings
 * for the specials. */
static void fmt_double(double v, char *out, size_t outlen)
{
    if (isnan(v)) {
        snprintf(out, outlen, "NaN");
    } else if (isinf(v)) {
        snprintf(out, outlen, v > 0 ? "+Inf" : "-Inf");
    } else if (v == trunc(v) && fabs(v) < 1e15) {
        snprintf(out, outlen, "%.0f", v); /* "10", not "1e+01" */
    } else {
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(out, outlen, "%.*g", prec, v);
            if (strtod(out, NULL) == v)
                return;
        }
    }
}

static void b_double(buf *b, double v)
{
    char tmp[40];
    fmt_double(v, tmp, sizeof tmp);
    b_str(b, tmp);
}

/* Writes `{a="x",b="y"` plus an optional le pair and the closing brace;
 * nothing when there are no labels and no le. */
static void b_labels(buf *b, const of_metric *m, const series *s,
                     const char *le)
{
    if (m->nlabels == 0 && le == NULL)
        return;
    b_put(b, "{", 1);
    for (size_t i = 0; i < m->nlabels; i++) {
        if (i)
            b_put(b, ",", 1);
        b_str(b, m->labels[i]);
        b_str(b, "=\"");
        b_escaped(b, s->values[i], true);
        b_put(b, "\"", 1);
    }
    if (le) {
        if (m->nlabels)
            b_put(b, ",", 1);
        b_str(b, "le=\"");
        b_str(b, le);
        b_put(b, "\"", 1);
    }
    b_put(b, "}", 1);
}

static void render_family(buf *b, const of_metric *m)
{
    static const char *const types[] = {"counter", "gauge", "histogram",
                                        "gauge"};
    b_str(b, "# HELP ");
    b_str(b, m->name);
    b_put(b, " ", 1);
    b_escaped(b, m->help, false);
    b_str(b, "\n# TYPE ");
    b_str(b, m->name);
    b_put(b, " ", 1);
    b_str(b, types[m->kind]);
    b_put(b, "\n", 1);
    if (m->kind == K_GAUGE_FN) {
        b_str(b, m->name);
        b_put(b, " ", 1);
        b_double(b, m->fn ? m->fn(m->ud) : 0);
        b_put(b, "\n", 1);
        return;
    }
    for (const series *s = m->first; s; s = s->next) {
        if (m->kind != K_HISTOGRAM) {
            b_str(b, m->name);
            b_labels(b, m, s, NULL);
            b_put(b, " ", 1);
            b_double(b, s->value);
            b_put(b, "\n", 1);
            continue;
        }
        unsigned long long cum = 0;
        for (size_t i = 0; i <= m->nbuckets; i++) {
            char le[40], num[32];
            cum += s->bucket[i];
            if (i < m->nbuckets)
                fmt_double(m->buckets[i], le, sizeof le);
            else
                snprintf(le, sizeof le, "+Inf");
            b_str(b, m->name);
            b_str(b, "_bucket");
            b_labels(b, m, s, le);
            snprintf(num, sizeof num, " %llu\n", cum);
            b_str(b, num);
        }
        b_str(b, m->name);
        b_str(b, "_sum");
        b_labels(b, m, s, NULL);
        b_put(b, " ", 1);
        b_double(b, s->sum);
        b_put(b, "\n", 1);
        char num[32];
        b_str(b, m->name);
        b_str(b, "_count");
        b_labels(b, m, s, NULL);
        snprintf(num, sizeof num, " %llu\n", s->count);
        b_str(b, num);
    }
}

/* Gauge callbacks run under the registry lock: they must not call the
 * metrics API themselves. */
char *of_metrics_render(size_t *len)
{
    buf b = {0};
    b_put(&b, "", 0); /* an empty registry still renders "" */
    pthread_mutex_lock(&reg_mu);
    for (const of_metric *m = reg_first; m; m = m->next)
        render_family(&b, m);
    pthread_mutex_unlock(&reg_mu);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    if (len)
        *len = b.len;
    return b.p;
}

void of_metrics_reset(void)
{
    pthread_mutex_lock(&reg_mu);
    of_metric *m = reg_first;
    reg_first = reg_last = NULL;
    pthread_mutex_unlock(&reg_mu);
    while (m) {
        of_metric *next = m->next;
        for (series *s = m->first; s;) {
            series *sn = s->next;
            free_series(m, s);
            s = sn;
        }
        for (size_t i = 0; i < m->nlabels; i++)
            free(m->labels[i]);
        free(m->labels);
        free(m->buckets);
        free(m->name);
        free(m->help);
        free(m);
        m = next;
    }
}
