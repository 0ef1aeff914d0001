/* loadgen.c: the load generator of the network benchmarks (a separate
 * process, so that none of its work counts against the server measured).
 *
 *   loadgen echo|tls|http ADDRESS CONNS SIZE
 *
 * ADDRESS is HOST:PORT (IPv4) or unix:PATH.  It opens CONNS connections,
 * then reads commands from stdin, one a line:
 *
 *   N    make N requests in all, spread over the connections, each
 *        connection one request at a time; answer "done NS" (the wall
 *        time it took, in ns) on stdout
 *   q    close the connections and exit
 *
 * echo: a request sends SIZE bytes and waits until SIZE bytes came back.
 * tls: the same over TLS (OpenSSL; the server's certificate is not
 * checked), the handshake made during the first command.
 * http: a request sends one keep-alive GET and reads one response (headers,
 * then Content-Length bytes of body).
 *
 * Plain epoll, blocking nothing: the client must never be what limits the
 * server.  Built by the benchmark runner (cc -O2).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

typedef struct {
    int fd;
    SSL *ssl;       /* tls mode */
    long todo;      /* requests left for this connection in this command */
    size_t sent;    /* bytes of the current request sent */
    size_t got;     /* bytes of the current response received */
    size_t want;    /* response size when known (http: after headers) */
    int busy;       /* a request is in flight */
    char *hdr;      /* http: header bytes seen so far */
    size_t hdr_len;
} conn_t;

static int is_http;
static SSL_CTX *ssl_ctx;
static size_t size;
static char *payload;
static size_t payload_len;
static char *sink;
#define SINK_SIZE (1 << 20)

static void
die(const char *what)
{
    perror(what);
    exit(2);
}

static int
connect_to(const char *address)
{
    int fd;
    if (strncmp(address, "unix:", 5) == 0) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        strncpy(sun.sun_path, address + 5, sizeof(sun.sun_path) - 1);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
            die("connect");
        }
    } else {
        char host[256];
        const char *colon = strrchr(address, ':');
        if (colon == NULL || (size_t)(colon - address) >= sizeof(host)) {
            fprintf(stderr, "bad address %s\n", address);
            exit(2);
        }
        memcpy(host, address, colon - address);
        host[colon - address] = 0;
        struct sockaddr_in sin = {.sin_family = AF_INET,
                                  .sin_port = htons(atoi(colon + 1))};
        if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
            fprintf(stderr, "bad host %s\n", host);
            exit(2);
        }
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
            die("connect");
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    return fd;
}

/* send()/recv() of the connection, plain or TLS: bytes, or -1 with errno
 * EAGAIN when it must wait, or -1 otherwise. */
static ssize_t
conn_send(conn_t *c, const char *buf, size_t len)
{
    if (c->ssl == NULL) {
        return send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    int n = SSL_write(c->ssl, buf, (int)len);
    if (n > 0) {
        return n;
    }
    int err = SSL_get_error(c->ssl, n);
    errno = err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE
                ? EAGAIN
                : EPIPE;
    return -1;
}

static ssize_t
conn_recv(conn_t *c, char *buf, size_t len)
{
    if (c->ssl == NULL) {
        return recv(c->fd, buf, len, MSG_DONTWAIT);
    }
    int n = SSL_read(c->ssl, buf, (int)len);
    if (n > 0) {
        return n;
    }
    int err = SSL_get_error(c->ssl, n);
    if (err == SSL_ERROR_ZERO_RETURN) {
        return 0;
    }
    errno = err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE
                ? EAGAIN
                : ECONNRESET;
    return -1;
}

static void
start_request(conn_t *c)
{
    c->busy = 1;
    c->sent = c->got = 0;
    c->want = is_http ? 0 : size;
    c->hdr_len = 0;
}

/* Sends what it can of the current request.  0, or -1 when the server
 * went away. */
static int
pump_send(conn_t *c)
{
    while (c->sent < payload_len) {
        ssize_t n = conn_send(c, payload + c->sent, payload_len - c->sent);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                return 0;
            }
            return -1;
        }
        c->sent += (size_t)n;
    }
    return 0;
}

/* http: how long the response is, once its headers are in. */
static int
parse_headers(conn_t *c, const char *data, size_t n, size_t *body_start)
{
    size_t keep = n < 8192 - c->hdr_len ? n : 8192 - c->hdr_len;
    memcpy(c->hdr + c->hdr_len, data, keep);
    c->hdr_len += keep;
    c->hdr[c->hdr_len] = 0;
    char *end = strstr(c->hdr, "\r\n\r\n");
    if (end == NULL) {
        return 0;
    }
    size_t header_size = (size_t)(end + 4 - c->hdr);
    char *cl = strcasestr(c->hdr, "\r\ncontent-length:");
    size_t body = cl ? strtoul(cl + 17, NULL, 10) : 0;
    c->want = header_size + body;
    *body_start = header_size;
    return 1;
}

/* Reads what arrived.  1 when the response is complete, 0 when not yet,
 * -1 when the server went away. */
static int
pump_recv(conn_t *c)
{
    for (;;) {
        ssize_t n = conn_recv(c, sink, SINK_SIZE);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                return 0;
            }
            return -1;
        }
        if (n == 0) {
            return -1;
        }
        if (is_http && c->want == 0) {
            size_t start;
            size_t before = c->hdr_len;
            if (parse_headers(c, sink, (size_t)n, &start)) {
                c->got = (size_t)n + before;
            } else {
                continue;
            }
        } else {
            c->got += (size_t)n;
        }
        if (c->want && c->got >= c->want) {
            return 1;
        }
    }
}

static long
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

int
main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: loadgen echo|tls|http ADDRESS CONNS SIZE\n");
        return 2;
    }
    is_http = strcmp(argv[1], "http") == 0;
    if (strcmp(argv[1], "tls") == 0) {
        ssl_ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_mode(ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
    int nconns = atoi(argv[3]);
    size = (size_t)atol(argv[4]);
    if (is_http) {
        static const char get[] = "GET / HTTP/1.1\r\nHost: localhost\r\n"
                                  "User-Agent: loadgen\r\n\r\n";
        payload = strdup(get);
        payload_len = sizeof(get) - 1;
    } else {
        payload = malloc(size);
        memset(payload, 'x', size);
        payload_len = size;
    }
    sink = malloc(SINK_SIZE);
    conn_t *conns = calloc((size_t)nconns, sizeof(conn_t));
    int ep = epoll_create1(0);
    for (int i = 0; i < nconns; i++) {
        conns[i].fd = connect_to(argv[2]);
        if (ssl_ctx != NULL) {
            /* Non-blocking from here: the handshake happens in the first
             * command's SSL_write, while the server's loop runs. */
            conns[i].ssl = SSL_new(ssl_ctx);
            SSL_set_fd(conns[i].ssl, conns[i].fd);
            SSL_set_connect_state(conns[i].ssl);
            fcntl(conns[i].fd, F_SETFL,
                  fcntl(conns[i].fd, F_GETFL) | O_NONBLOCK);
        }
        conns[i].hdr = malloc(8193);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev) < 0) {
            die("epoll_ctl");
        }
    }
    printf("ready\n");
    fflush(stdout);
    char line[64];
    struct epoll_event events[256];
    while (fgets(line, sizeof(line), stdin) != NULL) {
        if (line[0] == 'q') {
            break;
        }
        long total = atol(line);
        long started = now_ns();
        long outstanding = 0;
        for (int i = 0; i < nconns; i++) {
            conns[i].todo = total / nconns + (i < total % nconns);
            if (conns[i].todo > 0) {
                start_request(&conns[i]);
                if (pump_send(&conns[i]) < 0) {
                    die("send");
                }
                outstanding++;
            }
        }
        while (outstanding > 0) {
            int n = epoll_wait(ep, events, 256, -1);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                die("epoll_wait");
            }
            for (int k = 0; k < n; k++) {
                conn_t *c = &conns[events[k].data.u32];
                if (!c->busy) {
                    continue;
                }
                if (c->sent < payload_len && pump_send(c) < 0) {
                    fprintf(stderr, "loadgen: the server closed\n");
                    return 1;
                }
                int rc = pump_recv(c);
                if (rc < 0) {
                    fprintf(stderr, "loadgen: the server closed\n");
                    return 1;
                }
                if (rc == 1) {
                    c->busy = 0;
                    if (--c->todo > 0) {
                        start_request(c);
                        if (pump_send(c) < 0) {
                            fprintf(stderr, "loadgen: the server closed\n");
                            return 1;
                        }
                    } else {
                        outstanding--;
                    }
                }
            }
            /* A request larger than the socket buffer: keep sending. */
            for (int i = 0; i < nconns; i++) {
                if (conns[i].busy && conns[i].sent < payload_len &&
                    pump_send(&conns[i]) < 0) {
                    fprintf(stderr, "loadgen: the server closed\n");
                    return 1;
                }
            }
        }
        printf("done %ld\n", now_ns() - started);
        fflush(stdout);
    }
    for (int i = 0; i < nconns; i++) {
        if (conns[i].ssl != NULL) {
            SSL_free(conns[i].ssl);
        }
        close(conns[i].fd);
    }
    return 0;
}
