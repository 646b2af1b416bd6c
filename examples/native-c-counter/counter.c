/* A native plughost plugin in C: a counter with a command, an event subscription, a channel,
 * state handed over on update, and a host operation (host.storage.set) checked against its
 * permissions.
 * Build: cc -shared -fPIC -O2 -I../../include -o counter.so counter.c */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plughost.h"

static const plughost_host *host;
static long count;
static long events;

static char *dup_text(const char *text, size_t *len) {
    *len = strlen(text);
    char *out = malloc(*len + 1);
    if (out) memcpy(out, text, *len + 1);
    return out;
}

static char *number(long value, size_t *len) {
    char buf[32];
    snprintf(buf, sizeof buf, "%ld", value);
    return dup_text(buf, len);
}

/* The integer after "key": in a flat JSON object (enough for this example). */
static long int_arg(const char *json, const char *key, long fallback) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    const char *at = strstr(json, pattern);
    return at ? strtol(at + strlen(pattern), NULL, 10) : fallback;
}

uint32_t plughost_abi_version(void) { return PLUGHOST_ABI_VERSION; }

int32_t plughost_init(const plughost_host *h, char **out, size_t *out_len) {
    host = h;
    *out = dup_text(
        "{\"exports\": ["
        "{\"kind\": \"command\", \"name\": \"add\", \"target\": \"add\"},"
        "{\"kind\": \"command\", \"name\": \"get\", \"target\": \"get\"},"
        "{\"kind\": \"command\", \"name\": \"save\", \"target\": \"save\"},"
        "{\"kind\": \"command\", \"name\": \"crash\", \"target\": \"crash\"},"
        "{\"kind\": \"command\", \"name\": \"spin\", \"target\": \"spin\"},"
        "{\"kind\": \"event\", \"name\": \"counter.tick\", \"target\": \"on_tick\"},"
        "{\"kind\": \"channel\", \"name\": \"feed\", \"target\": \"feed\"}]}",
        out_len);
    return PLUGHOST_OK;
}

int32_t plughost_call(const char *target, const char *args, size_t args_len, char **out,
                      size_t *out_len) {
    (void)args_len;
    *out = NULL;
    *out_len = 0;
    if (strcmp(target, "add") == 0) {
        count += int_arg(args, "n", 1);
        *out = number(count, out_len);
    } else if (strcmp(target, "get") == 0) {
        *out = number(count, out_len);
    } else if (strcmp(target, "on_tick") == 0) {
        events++;
    } else if (strcmp(target, "save") == 0) {
        /* host.storage.set: refused unless the operator granted storage:<this plugin> */
        char params[96];
        snprintf(params, sizeof params, "{\"key\": \"count\", \"value\": %ld}", count);
        char *result = NULL;
        size_t result_len = 0;
        int32_t rc = host->call(host->data, "host.storage.set", params, strlen(params), &result,
                                &result_len);
        if (rc != PLUGHOST_OK) {
            /* hand the host's error (a JSON object with code and message) back as ours */
            *out = malloc(result_len + 1);
            memcpy(*out, result, result_len);
            (*out)[result_len] = 0;
            *out_len = result_len;
            host->free_result(host->data, result);
            return PLUGHOST_ERROR;
        }
        host->free_result(host->data, result);
        *out = dup_text("true", out_len);
    } else if (strcmp(target, "feed") == 0) {
        /* a channel, one call per step: answer each number with the new count; 0 ends it */
        char buf[64];
        if (strstr(args, "\"event\":\"open\"")) {
            snprintf(buf, sizeof buf, "{\"send\": [%ld]}", count);
        } else if (strstr(args, "\"event\":\"message\"")) {
            long n = int_arg(args, "data", 0);
            count += n;
            snprintf(buf, sizeof buf, "{\"send\": [%ld], \"close\": %s}", count,
                     n == 0 ? "true" : "false");
        } else { /* "close": the opener closed its end */
            snprintf(buf, sizeof buf, "null");
        }
        *out = dup_text(buf, out_len);
    } else if (strcmp(target, "crash") == 0) {
        volatile int *nowhere = NULL;
        *nowhere = 1; /* a segfault: the child dies, the host restarts it */
    } else if (strcmp(target, "spin") == 0) {
        for (;;) {
        } /* a hang: the host's deadline ends the child */
    } else if (strcmp(target, "$health") == 0) {
        *out = dup_text("{\"ok\": true, \"detail\": \"counting\"}", out_len);
    } else if (strcmp(target, "$export_state") == 0) {
        *out = number(count, out_len);
    } else if (strcmp(target, "$import_state") == 0) {
        count = int_arg(args, "state", 0);
    } else if (strcmp(target, "$activate") == 0 || strcmp(target, "$deactivate") == 0) {
        const char *line = "counter ready";
        host->log(host->data, 1, line, strlen(line));
    } else {
        return PLUGHOST_NO_TARGET;
    }
    return PLUGHOST_OK;
}

void plughost_free(char *ptr) { free(ptr); }

void plughost_shutdown(void) { host = NULL; }
