/*
 * ofctl_status.c - the pure half of `ofctl status`: figures, parsing,
 * rendering (ofctl_status.h).
 */
#include "ofctl_status.h"

#include <stdlib.h>
#include <string.h>

#include "ofctl_cli.h"
#include "ofctl_fmt.h"

void ofctl_status_free(ofctl_status *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nlags; i++) {
        free(s->lags[i].parts);
        s->lags[i].parts = NULL;
    }
}

int64_t ofctl_status_lag(int64_t low, int64_t high, int64_t committed)
{
    int64_t from = committed < low ? low : committed; /* also -1: none */
    return high > from ? high - from : 0;
}

void ofctl_status_sum_lag(ofctl_st_lag *l)
{
    l->lag = 0;
    l->uncommitted = 0;
    for (int32_t p = 0; p < l->npart; p++) {
        ofctl_st_part *pp = &l->parts[p];
        pp->lag = ofctl_status_lag(pp->low, pp->high, pp->committed);
        l->lag += pp->lag;
        l->uncommitted += pp->committed < 0 && pp->high > pp->low;
    }
    l->known = true;
}

static int class_cmp(const void *x, const void *y)
{
    const ofctl_st_class *a = x, *b = y;
    if (a->last_ms != b->last_ms)
        return a->last_ms > b->last_ms ? -1 : 1;
    if (a->count != b->count)
        return a->count > b->count ? -1 : 1;
    return strcmp(a->name, b->name);
}

void ofctl_status_add_class(ofctl_st_dlq *d, const char *cls, int64_t ms)
{
    if (cls == NULL || cls[0] == '\0')
        cls = "(none)";
    d->sampled++;
    ofctl_st_class *c = NULL;
    for (size_t i = 0; i < d->nclasses && c == NULL; i++)
        if (strcmp(d->classes[i].name, cls) == 0)
            c = &d->classes[i];
    if (c == NULL) {
        if (d->nclasses == OFCTL_ST_MAX_CLASSES)
            return;
        c = &d->classes[d->nclasses++];
        ofctl_copy(c->name, sizeof c->name, cls);
        c->count = 0;
        c->last_ms = -1;
    }
    c->count++;
    if (ms > c->last_ms)
        c->last_ms = ms;
    qsort(d->classes, d->nclasses, sizeof d->classes[0], class_cmp);
}

/* Appends "what" to the list of what is not ready (comma-separated). */
static void add_problem(char *out, size_t outlen, const char *what)
{
    size_t n = strlen(out);
    if (n + 1 < outlen)
        snprintf(out + n, outlen - n, "%s%s", n ? "; " : "", what);
}

/* What keeps the snapshot from being all ready, as one line ("" when
 * nothing). */
static void problems(const ofctl_status *s, char *out, size_t outlen)
{
    out[0] = '\0';
    char b[OFCTL_ST_ERR + 320];
    for (size_t i = 0; i < s->nservices; i++) {
        const ofctl_st_service *v = &s->services[i];
        if (v->ready)
            continue;
        if (v->url[0] == '\0')
            snprintf(b, sizeof b, "%s: no URL configured", v->name);
        else if (!v->reached)
            snprintf(b, sizeof b, "%s at %s unreachable", v->name, v->url);
        else
            snprintf(b, sizeof b, "%s at %s not ready (%ld)", v->name, v->url,
                     v->status);
        add_problem(out, outlen, b);
    }
    if (!s->kafka_reached)
        add_problem(out, outlen, "Kafka unreachable");
    if (!s->outbox.known)
        add_problem(out, outlen, "outbox backlog unknown");
}

bool ofctl_status_ok(const ofctl_status *s)
{
    char p[8];
    problems(s, p, sizeof p);
    return p[0] == '\0';
}

/* --- Prometheus text ----------------------------------------------------- */

size_t ofctl_prom_each(const char *text, const char *metric, ofctl_prom_fn fn,
                       void *ud)
{
    size_t found = 0, mlen = strlen(metric);
    for (const char *line = text; line && *line;) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        const char *next = eol ? eol + 1 : NULL;
        if (len > mlen && line[0] != '#' && strncmp(line, metric, mlen) == 0 &&
            (line[mlen] == '{' || line[mlen] == ' ')) {
            const char *p = line + mlen;
            char labels[1024] = "";
            if (*p == '{') {
                /* The closing brace outside a quoted value. */
                const char *q = p + 1;
                bool quoted = false;
                for (; q < line + len; q++) {
                    if (quoted && *q == '\\' && q + 1 < line + len)
                        q++;
                    else if (*q == '"')
                        quoted = !quoted;
                    else if (!quoted && *q == '}')
                        break;
                }
                if (q >= line + len) {
                    line = next;
                    continue; /* malformed */
                }
                size_t ll = (size_t)(q - p - 1);
                if (ll >= sizeof labels)
                    ll = sizeof labels - 1;
                memcpy(labels, p + 1, ll);
                labels[ll] = '\0';
                p = q + 1;
            }
            char num[64];
            while (p < line + len && *p == ' ')
                p++;
            size_t nl = 0;
            while (p + nl < line + len && p[nl] != ' ' && nl < sizeof num - 1)
                nl++;
            memcpy(num, p, nl);
            num[nl] = '\0';
            char *end = NULL;
            double v = strtod(num, &end);
            if (nl > 0 && end && *end == '\0') {
                found++;
                fn(ud, labels, v);
            }
        }
        line = next;
    }
    return found;
}

bool ofctl_prom_label(const char *labels, const char *name, char *out,
                      size_t outlen)
{
    size_t nlen = strlen(name);
    const char *p = labels;
    while (p && *p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *eq = strchr(p, '=');
        if (eq == NULL || eq[1] != '"')
            return false;
        bool match = (size_t)(eq - p) == nlen && strncmp(p, name, nlen) == 0;
        size_t o = 0;
        const char *q = eq + 2;
        for (; *q && *q != '"'; q++) {
            char c = *q;
            if (c == '\\' && q[1]) {
                q++;
                c = *q == 'n' ? '\n' : *q;
            }
            if (match && o + 1 < outlen)
                out[o++] = c;
        }
        if (match) {
            if (outlen)
                out[o] = '\0';
            return true;
        }
        p = *q ? q + 1 : q;
    }
    return false;
}

void ofctl_status_add_breakers(ofctl_st_breakers *b, const char *channel,
                               long n, long half)
{
    b->known = true;
    size_t i = 0;
    while (i < b->n && strcmp(b->channel[i], channel) != 0)
        i++;
    if (i == b->n) {
        if (b->n == OFCTL_ST_MAX_CHANNELS)
            return;
        ofctl_copy(b->channel[b->n], sizeof b->channel[0], channel);
        b->open[b->n] = 0;
        b->half_open[b->n] = 0;
        b->n++;
    }
    b->open[i] += n;
    b->half_open[i] += half;
}

/* --- text ---------------------------------------------------------------- */

static void print_services(const ofctl_status *s, FILE *f)
{
    ofctl_table *t = ofctl_table_new(
        3, (const char *const[]){"SERVICE", "URL", "READY"});
    for (size_t i = 0; i < s->nservices; i++) {
        const ofctl_st_service *v = &s->services[i];
        char ready[OFCTL_ST_ERR + 64];
        if (v->ready)
            snprintf(ready, sizeof ready, "yes");
        else if (v->url[0] == '\0')
            snprintf(ready, sizeof ready, "NO: no URL configured");
        else if (!v->reached)
            snprintf(ready, sizeof ready, "NO: unreachable (%s)", v->error);
        else
            snprintf(ready, sizeof ready, "NO: %ld%s%s", v->status,
                     v->error[0] ? " " : "", v->error);
        ofctl_table_add(t, (const char *const[]){
                               v->name, v->url[0] ? v->url : "-", ready});
    }
    ofctl_table_print(t, f);
}

static void print_lag(const ofctl_status *s, FILE *f)
{
    if (!s->kafka_reached) {
        fprintf(f, "consumer lag: unknown (%s)\n", s->kafka_error);
        return;
    }
    ofctl_table *t = ofctl_table_new(
        4, (const char *const[]){"GROUP", "TOPIC", "LAG", "PARTITIONS"});
    for (size_t i = 0; i < s->nlags; i++) {
        const ofctl_st_lag *l = &s->lags[i];
        char lag[32], parts[OFCTL_ST_ERR + 64];
        if (!l->known) {
            snprintf(lag, sizeof lag, "?");
            snprintf(parts, sizeof parts, "%s", l->error);
        } else {
            snprintf(lag, sizeof lag, "%lld", (long long)l->lag);
            if (l->uncommitted)
                snprintf(parts, sizeof parts, "%d (%d never committed)",
                         l->npart, l->uncommitted);
            else
                snprintf(parts, sizeof parts, "%d", l->npart);
        }
        ofctl_table_add(t, (const char *const[]){l->group, l->topic, lag,
                                                  parts});
    }
    ofctl_table_print(t, f);
}

static void print_dlqs(const ofctl_status *s, FILE *f)
{
    if (!s->kafka_reached)
        return;
    ofctl_table *t = ofctl_table_new(
        3, (const char *const[]){"DLQ", "RECORDS", "NEWEST ERROR CLASSES"});
    for (size_t i = 0; i < s->ndlqs; i++) {
        const ofctl_st_dlq *d = &s->dlqs[i];
        char rec[32], cls[OFCTL_ST_MAX_CLASSES * 100 + OFCTL_ST_ERR];
        cls[0] = '\0';
        if (!d->known) {
            snprintf(rec, sizeof rec, "?");
            snprintf(cls, sizeof cls, "%s", d->error);
        } else {
            snprintf(rec, sizeof rec, "%lld", (long long)d->records);
            for (size_t c = 0; c < d->nclasses; c++) {
                size_t n = strlen(cls);
                char ts[40];
                ofctl_fmt_time(d->classes[c].last_ms, ts, sizeof ts);
                snprintf(cls + n, sizeof cls - n, "%s%s x%ld%s%s%s",
                         c ? ", " : "", d->classes[c].name,
                         d->classes[c].count, c == 0 ? " (last " : "",
                         c == 0 ? ts : "", c == 0 ? ")" : "");
            }
            if (d->nclasses == 0)
                snprintf(cls, sizeof cls, "-");
        }
        ofctl_table_add(t, (const char *const[]){d->topic, rec, cls});
    }
    ofctl_table_print(t, f);
}

static void print_outbox(const ofctl_status *s, FILE *f)
{
    const ofctl_st_outbox *o = &s->outbox;
    if (!o->known) {
        fprintf(f, "outbox    unknown (%s)\n", o->error);
        return;
    }
    fprintf(f, "outbox    %lld row%s waiting", (long long)o->backlog,
            o->backlog == 1 ? "" : "s");
    if (o->backlog > 0 && o->oldest_s >= 0)
        fprintf(f, ", the oldest for %lld s", (long long)o->oldest_s);
    fprintf(f, "  (%s)\n", o->source);
}

static void print_breakers(const ofctl_status *s, FILE *f)
{
    const ofctl_st_breakers *b = &s->breakers;
    if (!b->known) {
        fprintf(f, "breakers  unknown (%s)\n", b->error);
        return;
    }
    fprintf(f, "breakers  ");
    size_t shown = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (b->open[i] == 0 && b->half_open[i] == 0)
            continue;
        fprintf(f, "%s%s", shown++ ? ", " : "", b->channel[i]);
        if (b->open[i])
            fprintf(f, " %ld open", b->open[i]);
        if (b->half_open[i])
            fprintf(f, "%s %ld half-open", b->open[i] ? "," : "",
                    b->half_open[i]);
    }
    fprintf(f, "%s  (%s)\n", shown ? "" : "none open", b->source);
}

void ofctl_status_print(const ofctl_status *s, FILE *f)
{
    char ts[40];
    ofctl_fmt_time(s->time_ms, ts, sizeof ts);
    fprintf(f, "orderflow status at %s", ts);
    if (s->prefix[0])
        fprintf(f, " (prefix %s)", s->prefix);
    fputs("\n\n", f);
    print_services(s, f);
    fputc('\n', f);
    print_lag(s, f);
    fputc('\n', f);
    print_dlqs(s, f);
    if (s->kafka_reached)
        fputc('\n', f);
    print_outbox(s, f);
    print_breakers(s, f);
    char p[2048];
    problems(s, p, sizeof p);
    fprintf(f, "\n%s%s\n", p[0] ? "NOT READY: " : "all ready", p);
}

/* --- JSON ---------------------------------------------------------------- */

static void json_error(cJSON *o, const char *err)
{
    if (err && err[0])
        cJSON_AddStringToObject(o, "error", err);
}

static cJSON *json_services(const ofctl_status *s)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < s->nservices; i++) {
        const ofctl_st_service *v = &s->services[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "service", v->name);
        cJSON_AddStringToObject(o, "url", v->url);
        cJSON_AddBoolToObject(o, "ready", v->ready);
        if (v->reached)
            cJSON_AddNumberToObject(o, "status", (double)v->status);
        else
            cJSON_AddNullToObject(o, "status");
        json_error(o, v->error);
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

static cJSON *json_lags(const ofctl_status *s)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < s->nlags; i++) {
        const ofctl_st_lag *l = &s->lags[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "group", l->group);
        cJSON_AddStringToObject(o, "topic", l->topic);
        if (!l->known) {
            cJSON_AddNullToObject(o, "lag");
            json_error(o, l->error);
            cJSON_AddItemToArray(a, o);
            continue;
        }
        cJSON_AddNumberToObject(o, "lag", (double)l->lag);
        cJSON *ps = cJSON_AddArrayToObject(o, "partitions");
        for (int32_t p = 0; p < l->npart; p++) {
            const ofctl_st_part *pp = &l->parts[p];
            cJSON *po = cJSON_CreateObject();
            cJSON_AddNumberToObject(po, "partition", p);
            cJSON_AddNumberToObject(po, "low", (double)pp->low);
            cJSON_AddNumberToObject(po, "high", (double)pp->high);
            if (pp->committed >= 0)
                cJSON_AddNumberToObject(po, "committed", (double)pp->committed);
            else
                cJSON_AddNullToObject(po, "committed");
            cJSON_AddNumberToObject(po, "lag", (double)pp->lag);
            cJSON_AddItemToArray(ps, po);
        }
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

static cJSON *json_dlqs(const ofctl_status *s)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < s->ndlqs; i++) {
        const ofctl_st_dlq *d = &s->dlqs[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "topic", d->topic);
        if (!d->known) {
            cJSON_AddNullToObject(o, "records");
            json_error(o, d->error);
            cJSON_AddItemToArray(a, o);
            continue;
        }
        cJSON_AddNumberToObject(o, "records", (double)d->records);
        cJSON_AddNumberToObject(o, "sampled", (double)d->sampled);
        cJSON *cs = cJSON_AddArrayToObject(o, "newest_classes");
        for (size_t c = 0; c < d->nclasses; c++) {
            cJSON *co = cJSON_CreateObject();
            cJSON_AddStringToObject(co, "class", d->classes[c].name);
            cJSON_AddNumberToObject(co, "count", (double)d->classes[c].count);
            ofctl_json_time(co, "last_failed_at", d->classes[c].last_ms);
            cJSON_AddItemToArray(cs, co);
        }
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

static cJSON *json_outbox(const ofctl_st_outbox *ob)
{
    cJSON *o = cJSON_CreateObject();
    if (ob->known) {
        cJSON_AddNumberToObject(o, "backlog", (double)ob->backlog);
        if (ob->oldest_s >= 0)
            cJSON_AddNumberToObject(o, "oldest_seconds", (double)ob->oldest_s);
        else
            cJSON_AddNullToObject(o, "oldest_seconds");
        cJSON_AddStringToObject(o, "source", ob->source);
    } else {
        cJSON_AddNullToObject(o, "backlog");
        json_error(o, ob->error);
    }
    return o;
}

static cJSON *json_breakers(const ofctl_st_breakers *b)
{
    cJSON *o = cJSON_CreateObject();
    if (!b->known) {
        cJSON_AddNullToObject(o, "open");
        json_error(o, b->error);
        return o;
    }
    cJSON *op = cJSON_AddObjectToObject(o, "open");
    cJSON *half = cJSON_AddObjectToObject(o, "half_open");
    long total = 0;
    for (size_t i = 0; i < b->n; i++) {
        cJSON_AddNumberToObject(op, b->channel[i], (double)b->open[i]);
        if (b->half_open[i])
            cJSON_AddNumberToObject(half, b->channel[i],
                                    (double)b->half_open[i]);
        total += b->open[i];
    }
    cJSON_AddNumberToObject(o, "total_open", (double)total);
    cJSON_AddStringToObject(o, "source", b->source);
    return o;
}

cJSON *ofctl_status_json(const ofctl_status *s)
{
    cJSON *j = cJSON_CreateObject();
    if (j == NULL)
        return NULL;
    ofctl_json_time(j, "time", s->time_ms);
    cJSON_AddStringToObject(j, "prefix", s->prefix);
    char p[2048];
    problems(s, p, sizeof p);
    cJSON_AddBoolToObject(j, "ready", p[0] == '\0');
    if (p[0])
        cJSON_AddStringToObject(j, "not_ready", p);
    else
        cJSON_AddNullToObject(j, "not_ready");
    cJSON_AddItemToObject(j, "services", json_services(s));
    cJSON *k = cJSON_AddObjectToObject(j, "kafka");
    cJSON_AddBoolToObject(k, "reachable", s->kafka_reached);
    json_error(k, s->kafka_error);
    cJSON_AddItemToObject(j, "lag", json_lags(s));
    cJSON_AddItemToObject(j, "dlq", json_dlqs(s));
    cJSON_AddItemToObject(j, "outbox", json_outbox(&s->outbox));
    cJSON_AddItemToObject(j, "breakers", json_breakers(&s->breakers));
    return j;
}
