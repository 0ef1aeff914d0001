/* echo_libev.c: a pure-C echo server on libev, the ceiling of the echo
 * benchmarks: the same kernel work as any loop's server (accept, one
 * recv and one send per message), and nothing else.  No Python event loop
 * can do less per request.
 *
 * Loaded by the benchmark worker with ctypes, so that it runs in the
 * measured process exactly where a loop's server would:
 *
 *   ceiling_open(listen_fd)  start accepting on a listening socket
 *   ceiling_run(nbytes)      serve until nbytes more were echoed
 *   ceiling_close()          close every connection
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_SIZE (256 * 1024)
#define MAX_CONNS 1024

typedef struct {
    ev_io rio, wio;
    char *pending; /* what the socket did not take yet */
    size_t pending_len;
} conn_t;

static struct ev_loop *loop;
static ev_io accept_w;
static conn_t *conns[MAX_CONNS];
static char buffer[READ_SIZE];
static long long remaining;
static int npending; /* connections with unsent data */

/* Done once every byte asked for came in and went back out. */
static void
maybe_done(struct ev_loop *l)
{
    if (remaining <= 0 && npending == 0) {
        ev_break(l, EVBREAK_ALL);
    }
}

static void
conn_close(conn_t *c)
{
    int fd = c->rio.fd;
    if (c->pending_len > 0) {
        npending--;
    }
    ev_io_stop(loop, &c->rio);
    ev_io_stop(loop, &c->wio);
    close(fd);
    free(c->pending);
    if (fd < MAX_CONNS) {
        conns[fd] = NULL;
    }
    free(c);
}

static void
write_cb(struct ev_loop *l, ev_io *w, int revents)
{
    conn_t *c = w->data;
    ssize_t n = send(w->fd, c->pending, c->pending_len, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno != EAGAIN) {
            conn_close(c);
        }
        return;
    }
    memmove(c->pending, c->pending + n, c->pending_len - (size_t)n);
    c->pending_len -= (size_t)n;
    if (c->pending_len == 0) {
        npending--;
        ev_io_stop(l, &c->wio);
        ev_io_start(l, &c->rio);
        maybe_done(l);
    }
}

static void
read_cb(struct ev_loop *l, ev_io *w, int revents)
{
    conn_t *c = w->data;
    ssize_t n = recv(w->fd, buffer, READ_SIZE, 0);
    if (n <= 0) {
        if (n == 0 || errno != EAGAIN) {
            conn_close(c);
        }
        return;
    }
    remaining -= n;
    ssize_t sent = send(w->fd, buffer, (size_t)n, MSG_NOSIGNAL);
    if (sent < 0) {
        if (errno != EAGAIN) {
            conn_close(c);
            return;
        }
        sent = 0;
    }
    if (sent < n) {
        /* Stop reading until the rest is out: the kernel pushes back. */
        c->pending = realloc(c->pending, (size_t)(n - sent));
        memcpy(c->pending, buffer + sent, (size_t)(n - sent));
        c->pending_len = (size_t)(n - sent);
        npending++;
        ev_io_stop(l, &c->rio);
        ev_io_start(l, &c->wio);
    }
    maybe_done(l);
}

static void
accept_cb(struct ev_loop *l, ev_io *w, int revents)
{
    for (;;) {
        int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            return;
        }
        if (fd >= MAX_CONNS) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        conn_t *c = calloc(1, sizeof(conn_t));
        ev_io_init(&c->rio, read_cb, fd, EV_READ);
        ev_io_init(&c->wio, write_cb, fd, EV_WRITE);
        c->rio.data = c->wio.data = c;
        conns[fd] = c;
        ev_io_start(l, &c->rio);
    }
}

int
ceiling_open(int listen_fd)
{
    loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (loop == NULL) {
        return -1;
    }
    fcntl(listen_fd, F_SETFL, fcntl(listen_fd, F_GETFL) | O_NONBLOCK);
    ev_io_init(&accept_w, accept_cb, listen_fd, EV_READ);
    ev_io_start(loop, &accept_w);
    return 0;
}

void
ceiling_run(long long nbytes)
{
    remaining += nbytes;
    if (remaining > 0 || npending > 0) {
        ev_run(loop, 0);
    }
}

void
ceiling_close(void)
{
    for (int fd = 0; fd < MAX_CONNS; fd++) {
        if (conns[fd] != NULL) {
            conn_close(conns[fd]);
        }
    }
    ev_io_stop(loop, &accept_w);
    ev_loop_destroy(loop);
    loop = NULL;
}
