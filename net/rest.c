/*
 * net/rest.c - the REST API's HTTP server: libmicrohttpd on its own thread,
 * bound to a socket this file opens (so that a port in use or a bad address
 * is a clear error, and port 0 gives an ephemeral port we can report).
 *
 * Invariants:
 *  1. the handler runs only on the server thread, and only with a complete
 *     body of at most SP_REST_BODY_BYTES_MAX bytes, NUL-terminated;
 *  2. every connection's request state (struct req) is freed by the
 *     completion callback, whatever way the request ended;
 *  3. the server thread blocks SIGINT and SIGTERM (they belong to the
 *     shard runtime's signalfd);
 *  4. the server never touches shard data: what the handler reads is its
 *     business (operators/rest_api.c reads atomics and locked snapshots).
 */
#include "net/rest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct sp_rest {
    struct MHD_Daemon *daemon;
    int fd;
    uint16_t port;
    sp_rest_handler_fn handler;
    void *arg;
};

/* One request being read. */
struct req {
    char *body;
    size_t len;
    size_t cap;
    int too_large;
};

void sp_rest_error(struct sp_rest_response *resp, unsigned status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *o = json_pack("{s:[s]}", "errors", msg);
    free(resp->body);
    resp->body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    resp->status = status;
    resp->content_type = NULL;
}

static enum MHD_Result send_response(struct MHD_Connection *conn, struct sp_rest_response *resp)
{
    size_t len = resp->body ? strlen(resp->body) : 0;
    /* MUST_FREE: the daemon frees the body after sending it. */
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, resp->body ? resp->body : (char *)"",
        resp->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(resp->body);
        return MHD_NO;
    }
    resp->body = NULL;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            resp->content_type ? resp->content_type : "application/json");
    if (resp->allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, resp->allow);
    enum MHD_Result ret = MHD_queue_response(conn, resp->status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct sp_rest *srv = cls;
    struct req *rq = *con_cls;
    if (!rq) {
        rq = calloc(1, sizeof(*rq));
        if (!rq)
            return MHD_NO;
        *con_cls = rq;
        return MHD_YES; /* headers only; the body (if any) comes next */
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (rq->too_large || rq->len + n > SP_REST_BODY_BYTES_MAX) {
            rq->too_large = 1;
            return MHD_YES;
        }
        if (rq->len + n + 1 > rq->cap) {
            size_t cap = rq->cap ? rq->cap : 1024;
            while (cap < rq->len + n + 1)
                cap *= 2;
            char *b = realloc(rq->body, cap);
            if (!b)
                return MHD_NO;
            rq->body = b;
            rq->cap = cap;
        }
        memcpy(rq->body + rq->len, upload_data, n);
        rq->len += n;
        rq->body[rq->len] = '\0';
        return MHD_YES;
    }
    struct sp_rest_response resp = {.status = 500};
    if (rq->too_large) {
        sp_rest_error(&resp, 413, "request body larger than %u bytes", SP_REST_BODY_BYTES_MAX);
    } else {
        struct sp_rest_request r = {
            .method = method, .path = url, .body = rq->body ? rq->body : "", .body_bytes = rq->len};
        srv->handler(srv->arg, &r, &resp);
    }
    return send_response(conn, &resp);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    (void)cls;
    (void)conn;
    (void)code;
    struct req *rq = *con_cls;
    if (rq) {
        free(rq->body);
        free(rq);
        *con_cls = NULL;
    }
}

/* Opens the listening socket: clear errors, and the chosen port. */
static int listen_on(const char *address, uint16_t port, int *fd_out, uint16_t *port_out,
                     struct spate_error *err)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t sl;
    int family;
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, address, &in4->sin_addr) == 1) {
        family = AF_INET;
        in4->sin_family = AF_INET;
        in4->sin_port = htons(port);
        sl = sizeof(*in4);
    } else if (inet_pton(AF_INET6, address, &in6->sin6_addr) == 1) {
        family = AF_INET6;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        sl = sizeof(*in6);
    } else {
        return spate_error_set(err, -EINVAL,
                               "rest.address: '%s' is not a numeric IPv4 or IPv6 address", address);
    }
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return spate_error_set(err, -errno, "REST API: socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
        int e = errno;
        close(fd);
        return spate_error_set(err, -e,
                               "REST API: cannot bind %s port %u (rest.address, "
                               "rest.port): %s",
                               address, port, strerror(e));
    }
    if (listen(fd, SP_REST_CONNECTIONS_MAX) < 0) {
        int e = errno;
        close(fd);
        return spate_error_set(err, -e, "REST API: listen: %s", strerror(e));
    }
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
        int e = errno;
        close(fd);
        return spate_error_set(err, -e, "REST API: getsockname: %s", strerror(e));
    }
    *port_out = ntohs(family == AF_INET ? in4->sin_port : in6->sin6_port);
    *fd_out = fd;
    return 0;
}

int sp_rest_create(const struct sp_rest_opts *opts, struct sp_rest **out, struct spate_error *err)
{
    *out = NULL;
    if (!opts || !opts->address || !opts->handler)
        return spate_error_set(err, -EINVAL, "REST API: bad options");
    struct sp_rest *r = calloc(1, sizeof(*r));
    if (!r)
        return spate_error_set(err, -ENOMEM, "out of memory");
    r->handler = opts->handler;
    r->arg = opts->arg;
    int rc = listen_on(opts->address, opts->port, &r->fd, &r->port, err);
    if (rc < 0) {
        free(r);
        return rc;
    }
    /* ITC: lets sp_rest_destroy quiesce the daemon. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ITC;
    if (strchr(opts->address, ':'))
        flags |= MHD_USE_IPv6;
    /* The server thread inherits this mask: it must never take SIGINT or
     * SIGTERM, which the shard runtime reads with a signalfd while it runs
     * (a thread with them unblocked would get the default action: exit). */
    sigset_t sigs, old;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, &old);
    r->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, r, MHD_OPTION_LISTEN_SOCKET,
                                 (MHD_socket)r->fd, MHD_OPTION_CONNECTION_LIMIT,
                                 (unsigned)SP_REST_CONNECTIONS_MAX, MHD_OPTION_CONNECTION_TIMEOUT,
                                 (unsigned)SP_REST_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED,
                                 on_completed, NULL, MHD_OPTION_END);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!r->daemon) {
        close(r->fd);
        free(r);
        return spate_error_set(err, -EIO, "REST API: libmicrohttpd failed to start on %s:%u",
                               opts->address, opts->port);
    }
    *out = r;
    return 0;
}

uint16_t sp_rest_port(const struct sp_rest *r)
{
    return r->port;
}

void sp_rest_destroy(struct sp_rest *r)
{
    if (!r)
        return;
    /* Stop accepting, then let the connections still open finish (a client
     * reading the result that ended the job), at most SP_REST_DRAIN_MS:
     * MHD_stop_daemon would cut a response not yet sent. Quiesce hands the
     * listening socket back to us; if it fails the daemon still owns it
     * and closes it itself. */
    MHD_socket s = MHD_quiesce_daemon(r->daemon);
    for (int waited_ms = 0; waited_ms < SP_REST_DRAIN_MS; waited_ms += 10) {
        const union MHD_DaemonInfo *info =
            MHD_get_daemon_info(r->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        if (!info || info->num_connections == 0)
            break;
        struct timespec d = {0, 10 * 1000000};
        nanosleep(&d, NULL);
    }
    MHD_stop_daemon(r->daemon);
    if (s != MHD_INVALID_SOCKET)
        close(s);
    free(r);
}
