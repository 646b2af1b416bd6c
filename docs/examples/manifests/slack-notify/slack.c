/* slack.so: the Arcade-style manifest's entryPoint, as a native plughost plugin.
 * notify(text) posts {"text": ...} to the configured webhook through host.http.request, which
 * the host checks against the plugin's net: grants like any other host operation.
 * Build: cc -shared -fPIC -O2 -I../../../../include -o slack.so slack.c */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plughost.h"

static const plughost_host *host;

static char *dup_text(const char *text, size_t *len) {
    *len = strlen(text);
    char *out = malloc(*len + 1);
    memcpy(out, text, *len + 1);
    return out;
}

/* `text` as a JSON string (quotes, backslashes and control characters escaped). */
static char *json_string(const char *text, size_t len) {
    char *out = malloc(len * 6 + 3), *at = out;
    *at++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '"' || c == '\\') { *at++ = '\\'; *at++ = (char)c; }
        else if (c < 0x20) { at += sprintf(at, "\\u%04x", c); }
        else *at++ = (char)c;
    }
    *at++ = '"';
    *at = 0;
    return out;
}

static int32_t ask(const char *method, const char *params, char **out, size_t *out_len) {
    char *result = NULL;
    size_t len = 0;
    int32_t rc = host->call(host->data, method, params, strlen(params), &result, &len);
    *out = malloc(len + 1);
    memcpy(*out, result, len);
    (*out)[len] = 0;
    *out_len = len;
    host->free_result(host->data, result);
    return rc;
}

uint32_t plughost_abi_version(void) { return PLUGHOST_ABI_VERSION; }

int32_t plughost_init(const plughost_host *h, char **out, size_t *out_len) {
    host = h;
    *out = dup_text("{\"exports\": [{\"kind\": \"command\", \"name\": \"slack-notify.notify\", "
                    "\"target\": \"notify\"}]}", out_len);
    return PLUGHOST_OK;
}

int32_t plughost_call(const char *target, const char *args, size_t args_len, char **out,
                      size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    if (strcmp(target, "notify") != 0) return PLUGHOST_NO_TARGET;
    char *url = NULL;
    size_t url_len = 0;
    if (ask("host.config.get", "{\"key\": \"webhook_url\"}", &url, &url_len) != PLUGHOST_OK ||
        url_len < 2 || url[0] != '"') {
        free(url);
        *out = dup_text("{\"message\": \"webhook_url is not configured\"}", out_len);
        return PLUGHOST_ERROR;
    }
    char *body = json_string(args, args_len); /* the arguments object, {"text": ...} */
    size_t size = url_len + strlen(body) + 64;
    char *params = malloc(size);
    strcpy(params, "{\"method\": \"POST\", \"url\": ");
    strcat(params, url);
    strcat(params, ", \"body\": ");
    strcat(params, body);
    strcat(params, "}");
    free(url);
    free(body);
    int32_t rc = ask("host.http.request", params, out, out_len);
    free(params);
    return rc == PLUGHOST_OK ? PLUGHOST_OK : PLUGHOST_ERROR;
}

void plughost_free(char *ptr) { free(ptr); }

void plughost_shutdown(void) { host = NULL; }
