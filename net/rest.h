/*
 * net/rest.h - a small HTTP/1.1 server for the REST API, on libmicrohttpd.
 *
 * Generic: it knows requests and responses, not jobs. The job-facing routes
 * live in operators/rest_api.c (net/ sits below operators/ in the layer
 * order and must not see job internals).
 *
 * Threading: the server runs on its own thread (libmicrohttpd's internal
 * polling thread), never on a shard. The handler is called on that thread,
 * one request at a time, with the whole request body read (at most
 * SP_REST_BODY_BYTES_MAX; larger bodies get 413 without a handler call).
 *
 * Ownership: sp_rest_create copies the options; the handler fills
 * `resp->body` with a malloc'ed string the server frees after sending.
 */
#ifndef SP_NET_REST_H
#define SP_NET_REST_H

#include <stddef.h>
#include <stdint.h>

#include "spate/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SP_REST_BODY_BYTES_MAX    (64u << 10) /* request bodies (JSON) */
#define SP_REST_CONNECTIONS_MAX   64          /* open connections at once */
#define SP_REST_TIMEOUT_S         10          /* idle connection timeout */
#define SP_REST_DRAIN_MS          1000        /* stop: wait for open connections */
#define SP_REST_ADDRESS_BYTES_MAX 256

struct sp_rest;

struct sp_rest_request {
    const char *method; /* "GET", "POST", ... */
    const char *path;   /* without the query string */
    const char *body;   /* NUL-terminated; "" when none */
    size_t body_bytes;
};

struct sp_rest_response {
    unsigned status;          /* HTTP status code */
    const char *content_type; /* static string; NULL: application/json */
    char *body;               /* malloc'ed by the handler; NULL: empty */
    const char *allow;        /* 405: the Allow header (static string) */
};

/* Fills resp; returns nothing (errors are responses). */
typedef void (*sp_rest_handler_fn)(void *arg, const struct sp_rest_request *req,
                                   struct sp_rest_response *resp);

struct sp_rest_opts {
    const char *address; /* numeric IPv4 or IPv6 address to bind */
    uint16_t port;       /* 0: an ephemeral port (see sp_rest_port) */
    sp_rest_handler_fn handler;
    void *arg;
};

/* Binds, listens and starts the server thread. Errors name the address
 * (e.g. port in use: -EADDRINUSE). */
int sp_rest_create(const struct sp_rest_opts *opts, struct sp_rest **out, struct spate_error *err);

/* The port bound (the chosen one when opts.port was 0). */
uint16_t sp_rest_port(const struct sp_rest *r);

/* Stops the thread (waits for the request in progress) and frees. NULL ok. */
void sp_rest_destroy(struct sp_rest *r);

/* Fills resp with `status` and the body {"errors":["<message>"]}. */
void sp_rest_error(struct sp_rest_response *resp, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif
#endif
