/* A hostile native plugin for the conformance suite: every target misbehaves in one way. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plughost.h"

static const plughost_host *host;

static char *dup_text(const char *text, size_t *len) {
    *len = strlen(text);
    char *out = malloc(*len + 1);
    memcpy(out, text, *len + 1);
    return out;
}

/* The string value after "key":" in a flat JSON object, copied into buf. */
static const char *str_arg(const char *json, const char *key, char *buf, size_t size) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":\"", key);
    const char *at = strstr(json, pattern);
    buf[0] = 0;
    if (!at) return buf;
    at += strlen(pattern);
    size_t i = 0;
    while (at[i] && at[i] != '"' && i + 1 < size) { buf[i] = at[i]; i++; }
    buf[i] = 0;
    return buf;
}

static long int_arg(const char *json, const char *key, long fallback) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    const char *at = strstr(json, pattern);
    return at ? strtol(at + strlen(pattern), NULL, 10) : fallback;
}

/* Ask the host; on refusal hand its error object back as ours. */
static int32_t ask(const char *method, const char *params, char **out, size_t *out_len) {
    char *result = NULL;
    size_t len = 0;
    int32_t rc = host->call(host->data, method, params, strlen(params), &result, &len);
    *out = malloc(len + 1);
    memcpy(*out, result, len);
    (*out)[len] = 0;
    *out_len = len;
    host->free_result(host->data, result);
    return rc == PLUGHOST_OK ? PLUGHOST_OK : PLUGHOST_ERROR;
}

uint32_t plughost_abi_version(void) { return PLUGHOST_ABI_VERSION; }

int32_t plughost_init(const plughost_host *h, char **out, size_t *out_len) {
    host = h;
    *out = dup_text("{\"exports\": [{\"kind\": \"command\", \"name\": \"hostile.ping\", "
                    "\"target\": \"ping\"}]}", out_len);
    return PLUGHOST_OK;
}

int32_t plughost_call(const char *target, const char *args, size_t args_len, char **out,
                      size_t *out_len) {
    (void)args_len;
    char buf[512], params[1024];
    *out = NULL;
    *out_len = 0;
    if (strcmp(target, "ping") == 0) {
        *out = dup_text("\"pong\"", out_len);
    } else if (strcmp(target, "infinite_loop") == 0) {
        for (volatile unsigned long i = 0;; i++) {
        }
    } else if (strcmp(target, "memory_bomb") == 0) {
        for (;;) {
            char *block = malloc(16 << 20);
            if (!block) abort(); /* the address-space limit: nothing left to allocate */
            memset(block, 1, 16 << 20);
        }
    } else if (strcmp(target, "crash_mid_call") == 0) {
        volatile int *nowhere = NULL;
        *nowhere = 1;
    } else if (strcmp(target, "output_flood") == 0) {
        long lines = int_arg(args, "lines", 1000);
        for (long i = 0; i < lines; i++) fprintf(stderr, "flood %ld\n", i);
        fflush(stderr);
        *out = malloc(32);
        *out_len = (size_t)snprintf(*out, 32, "%ld", lines);
    } else if (strcmp(target, "oversized_message") == 0) {
        long size = int_arg(args, "size", 1 << 20);
        *out = malloc((size_t)size + 3);
        (*out)[0] = '"';
        memset(*out + 1, 'x', (size_t)size);
        (*out)[size + 1] = '"';
        (*out)[size + 2] = 0;
        *out_len = (size_t)size + 2;
    } else if (strcmp(target, "bad_json") == 0) {
        *out = dup_text("{not json", out_len);
    } else if (strcmp(target, "forbidden_file_read") == 0) {
        snprintf(params, sizeof params, "{\"path\": \"%s\"}", str_arg(args, "path", buf, sizeof buf));
        return ask("host.files.read", params, out, out_len);
    } else if (strcmp(target, "forbidden_http_request") == 0) {
        snprintf(params, sizeof params, "{\"url\": \"%s\"}", str_arg(args, "url", buf, sizeof buf));
        return ask("host.http.request", params, out, out_len);
    } else if (strcmp(target, "forbidden_event_emit") == 0) {
        snprintf(params, sizeof params, "{\"topic\": \"%s\", \"payload\": {\"evil\": true}}",
                 str_arg(args, "topic", buf, sizeof buf));
        return ask("host.emit", params, out, out_len);
    } else if (strcmp(target, "unknown_host_op") == 0) {
        return ask("host.shell.run", "{\"cmd\": \"id\"}", out, out_len);
    } else if (target[0] == '$') {
        return PLUGHOST_NO_TARGET;
    } else {
        return PLUGHOST_NO_TARGET;
    }
    return PLUGHOST_OK;
}

void plughost_free(char *ptr) { free(ptr); }

void plughost_shutdown(void) { host = NULL; }
