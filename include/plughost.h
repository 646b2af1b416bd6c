/*
 * plughost.h -- the C ABI of a plughost native plugin (runtime = "native").
 *
 * A native plugin is a shared library (.so on Linux, .dylib on macOS, .dll on Windows) in the
 * plugin folder that exports the five functions below with C linkage. Everything that crosses
 * the boundary is UTF-8 JSON with an explicit length, so any language that can build a C shared
 * library (C, C++, Rust cdylib, Go -buildmode=c-shared, Zig...) can write one.
 *
 * The host calls, in order:
 *   1. plughost_abi_version()  -- before anything else; a library whose version is not
 *                                  PLUGHOST_ABI_VERSION is refused (nothing else is called).
 *   2. plughost_init(host, &out, &out_len)
 *                               -- keep `host` (valid until plughost_shutdown returns); answer
 *                                  {"exports": [{"kind": "command", "name": "add",
 *                                                "target": "add", "options": {}}]}
 *                                  kind is "command", "hook", "event" or "channel"
 *                                  (docs/runtimes.md).
 *   3. plughost_call(target, args, args_len, &out, &out_len), any number of times:
 *        - a target from the exports, with a JSON object of keyword arguments
 *          (an event target gets {"topic", "payload", "source", "id", "timestamp"};
 *          a channel target gets one call per step, {"channel": N, "event": "open" |
 *          "message" | "close", "data": ...} with "data" on messages, and answers null or
 *          {"send": [messages...], "close": true|false} -- docs/native.md);
 *        - the lifecycle targets, all optional (answer PLUGHOST_NO_TARGET to ignore one):
 *          "$activate" {"plugin_id", "config", "data_dir"}, "$deactivate" {},
 *          "$health" {} -> true / false / {"ok": bool, "detail": "..."},
 *          "$config_change" {"old", "new"} (an error refuses the change),
 *          "$export_state" {} -> any JSON, "$import_state" {"state", "from_version"},
 *          "$enable" {}, "$disable" {}.
 *   4. plughost_free(ptr) for every non-NULL *out the library returned.
 *   5. plughost_shutdown() once, last.
 *
 * Return codes of plughost_init / plughost_call:
 *   PLUGHOST_OK         *out is the JSON result ("null" or NULL mean null);
 *   PLUGHOST_ERROR      *out is an error: a JSON object {"message": "...", "code": "..."} or a
 *                       plain UTF-8 message;
 *   PLUGHOST_NO_TARGET  the library has no such target.
 * Calls come from one thread at a time (the host serialises them).
 *
 * Host operations: host->call(host->data, method, params, params_len, &result, &result_len)
 * asks the host for one of the operations of docs/protocol.md ("host.emit", "host.storage.get",
 * "host.files.read", "host.log", ...) with a JSON object of parameters. Each is checked against
 * the plugin's granted permissions exactly as for process and WebAssembly plugins. It returns
 * PLUGHOST_OK with the JSON result, or PLUGHOST_ERROR with {"code": "permission.denied",
 * "message": "..."}; release *result with host->free_result(host->data, result).
 * host->log(host->data, level, message, len) writes one line to the plugin's log
 * (level 0 debug .. 4 critical).
 *
 * Isolation: by default the host loads the library in a child process of its own, so a crash,
 * a hang or a runaway allocation ends that child (which is restarted), never the host. An
 * operator may trust a library to run inside the host process for the lowest latency; then it
 * can do anything the host can.
 */
#ifndef PLUGHOST_H
#define PLUGHOST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PLUGHOST_ABI_VERSION 1u

#define PLUGHOST_OK 0
#define PLUGHOST_ERROR 1
#define PLUGHOST_NO_TARGET 2

#if defined(_WIN32)
#define PLUGHOST_EXPORT __declspec(dllexport)
#else
#define PLUGHOST_EXPORT __attribute__((visibility("default")))
#endif

typedef struct plughost_host {
    uint32_t abi_version; /* PLUGHOST_ABI_VERSION of the host */
    void *data;           /* pass back unchanged */
    int32_t (*call)(void *data, const char *method, const char *params, size_t params_len,
                    char **result, size_t *result_len);
    void (*free_result)(void *data, char *result);
    void (*log)(void *data, int32_t level, const char *message, size_t message_len);
} plughost_host;

PLUGHOST_EXPORT uint32_t plughost_abi_version(void);
PLUGHOST_EXPORT int32_t plughost_init(const plughost_host *host, char **out, size_t *out_len);
PLUGHOST_EXPORT int32_t plughost_call(const char *target, const char *args, size_t args_len,
                                      char **out, size_t *out_len);
PLUGHOST_EXPORT void plughost_free(char *ptr);
PLUGHOST_EXPORT void plughost_shutdown(void);

#ifdef __cplusplus
}
#endif

#endif /* PLUGHOST_H */
