/*
 * netctl-cni: the binary a container runtime execs once per container.
 *
 * Starting Node costs more than a whole ADD of the reference bridge plugin,
 * so this small program only forwards: it sends the CNI_* environment and
 * the config read from stdin to the running netctl daemon
 * (POST /v1/cni on its unix socket), prints the body of the answer and
 * exits with the status the daemon names in the Netctl-Cni-Exit header.
 * When no daemon listens, it runs the same plugin in-process with node
 * (slower, same results): the config goes back on stdin through a memfd.
 * Once something has accepted the connection it never does: a daemon that
 * is there but wedged (no whole, well-formed answer within
 * NETCTL_CNI_TIMEOUT) is CNI error 11, "try again later", so a wedged
 * daemon fails container starts quickly instead of hanging them.
 *
 * One binary, two plugins: executed as netctl-ipam (a symlink to it, as
 * `netctl cni install` makes) it is netctl's IPAM plugin, otherwise
 * netctl-cni. The name is taken from argv[0], which runtimes set to the
 * plugin's path (libcni's invoke does).
 *
 * Environment: NETCTL_SOCKET (default /run/netctl/api.sock),
 * NETCTL_CNI_TIMEOUT (seconds for the whole exchange with the daemon,
 * fractions allowed; default 30),
 * NETCTL_CNI_NODE_MAIN (the in-process entry point; default next to this
 * binary: ../../../dist/src/cni/main.js), NETCTL_NODE (default "node" on
 * PATH, then /usr/bin/node and /usr/local/bin/node: runtimes may run
 * plugins with a short PATH).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* CNI spec error codes (SPEC.md "Error"): 5 = I/O failure, 7 = invalid
 * network configuration, 11 = try again later. */
#define CNI_ERR_IO 5
#define CNI_ERR_INVALID_CONFIG 7
#define CNI_ERR_TRY_AGAIN 11
/* As src/cni/skel.ts MAX_CONFIG_BYTES. */
#define MAX_CONFIG (1024 * 1024)
/* A daemon ADD takes ~20 ms, 50 at once a few seconds: 30 s is a wedged
 * daemon, and still well inside a runtime's own limit (kubelet's 2 min),
 * so the runtime hears error 11 rather than killing us. */
#define DEFAULT_TIMEOUT_S 30.0
#define MAX_TIMEOUT_S 86400.0
/* An answer is a short header and a CNI result: anything bigger is not netctl. */
#define MAX_HEADER (16 * 1024)
#define MAX_BODY (16 * 1024 * 1024)

static const char *const CNI_VARS[] = {"CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME",
                                       "CNI_ARGS",    "CNI_PATH",        NULL};

struct buf {
  char *data;
  size_t len, cap;
};

static void put(struct buf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (b->len + n + 1 > cap) cap *= 2;
    char *grown = realloc(b->data, cap);
    if (!grown) {
      perror("netctl-cni");
      exit(CNI_ERR_IO);
    }
    b->data = grown;
    b->cap = cap;
  }
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = 0;
}

static void puts_(struct buf *b, const char *s) { put(b, s, strlen(s)); }

/* A JSON string literal of s[0..n) (RFC 8259 escaping). */
static void put_json_string(struct buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  puts_(b, "\"");
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      char esc[2] = {'\\', (char)c};
      put(b, esc, 2);
    } else if (c < 0x20) {
      char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      put(b, esc, 6);
    } else {
      put(b, (const char *)&c, 1);
    }
  }
  puts_(b, "\"");
}

/* Print a CNI error result (the spec's JSON) and exit with its code. */
static void cni_fail(int code, const char *msg, const char *details) {
  struct buf out = {0};
  puts_(&out, "{\"cniVersion\":\"1.1.0\",\"code\":");
  char num[16];
  snprintf(num, sizeof num, "%d", code);
  puts_(&out, num);
  puts_(&out, ",\"msg\":");
  put_json_string(&out, msg, strlen(msg));
  if (details) {
    puts_(&out, ",\"details\":");
    put_json_string(&out, details, strlen(details));
  }
  puts_(&out, "}\n");
  fwrite(out.data, 1, out.len, stdout);
  exit(code);
}

static struct buf read_stdin(void) {
  struct buf in = {0};
  char chunk[65536];
  for (;;) {
    ssize_t n = read(0, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) cni_fail(CNI_ERR_IO, "cannot read the network configuration from stdin", strerror(errno));
    if (n == 0) break;
    put(&in, chunk, (size_t)n);
    if (in.len > MAX_CONFIG) {
      char details[64];
      snprintf(details, sizeof details, "more than %d bytes", MAX_CONFIG);
      cni_fail(CNI_ERR_IO, "network configuration on stdin is too large", details);
    }
  }
  if (!in.data) puts_(&in, "");
  return in;
}

/* netctl-ipam when executed under that name, else netctl-cni. */
static const char *plugin_name(const char *argv0) {
  const char *slash = argv0 ? strrchr(argv0, '/') : NULL;
  const char *base = slash ? slash + 1 : argv0;
  return base && strcmp(base, "netctl-ipam") == 0 ? "netctl-ipam" : "netctl-cni";
}

static const char *dirname_of(char *path) {
  char *slash = strrchr(path, '/');
  if (slash) *slash = 0;
  return path;
}

/* No daemon: run the Node implementation with the config back on stdin. */
static void run_in_process(const char *plugin, const struct buf *config) {
  char main_js[PATH_MAX + 64];
  const char *configured = getenv("NETCTL_CNI_NODE_MAIN");
  if (configured) {
    snprintf(main_js, sizeof main_js, "%s", configured);
  } else {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0) cni_fail(CNI_ERR_IO, "cannot find netctl's in-process plugin", strerror(errno));
    self[n] = 0;
    /* native/build/Release/netctl-cni -> dist/src/cni/main.js */
    snprintf(main_js, sizeof main_js, "%s/../../../dist/src/cni/main.js", dirname_of(self));
  }
  int fd = memfd_create("netctl-cni-config", MFD_CLOEXEC);
  if (fd < 0) cni_fail(CNI_ERR_IO, "cannot hand the configuration over", strerror(errno));
  if (write(fd, config->data, config->len) != (ssize_t)config->len || lseek(fd, 0, SEEK_SET) != 0 ||
      dup2(fd, 0) != 0) {
    cni_fail(CNI_ERR_IO, "cannot hand the configuration over", strerror(errno));
  }
  const char *node = getenv("NETCTL_NODE");
  char *args[] = {(char *)(node ? node : "node"), main_js, (char *)plugin, NULL};
  if (node) {
    execvp(node, args);
  } else {
    static const char *const nodes[] = {"node", "/usr/bin/node", "/usr/local/bin/node", NULL};
    for (const char *const *n = nodes; *n; n++) {
      execvp(*n, args);
      if (errno != ENOENT) break;
    }
  }
  cni_fail(CNI_ERR_IO, "no netctl daemon answers and node cannot be started", strerror(errno));
}

/*
 * The exchange with the daemon: connect, send, read the answer, all of it
 * before one deadline on the monotonic clock (setting the wall clock moves
 * nothing). The socket is non-blocking and every wait is a poll() for what
 * is left, so a daemon that accepts and never answers, or answers a byte at
 * a time, costs at most the timeout.
 */
struct daemon {
  const char *path;
  int fd;
  double timeout_s;
  long long deadline_ms;
};

static long long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

/*
 * NETCTL_CNI_TIMEOUT: seconds, decimal, fractions allowed, more than 0 and
 * at most a day; unset or empty is the default. Anything else is refused
 * rather than replaced by the default, so a typo shows at the first call.
 */
static double exchange_timeout(void) {
  const char *text = getenv("NETCTL_CNI_TIMEOUT");
  if (!text || !*text) return DEFAULT_TIMEOUT_S;
  char *end = (char *)text;
  double s = 0;
  if (!text[strspn(text, "0123456789.")]) s = strtod(text, &end);
  if (*end || !(s > 0 && s <= MAX_TIMEOUT_S)) {
    char details[128];
    snprintf(details, sizeof details, "%.40s: want seconds, more than 0 and at most %g (e.g. 30 or 0.5)",
             text, MAX_TIMEOUT_S);
    cni_fail(CNI_ERR_INVALID_CONFIG, "invalid NETCTL_CNI_TIMEOUT", details);
  }
  return s;
}

/*
 * Something accepted our connection and then failed us: try again later
 * (error 11). Never fall back to in-process mode from here: a wedged daemon
 * still holds the state, and a second controller beside it would split it.
 */
static void daemon_fail(const struct daemon *d, const char *what, const char *details) {
  char msg[512];
  snprintf(msg, sizeof msg, "netctl daemon at %s is not answering: %s", d->path, what);
  cni_fail(CNI_ERR_TRY_AGAIN, msg, details);
}

static void expired(const struct daemon *d, const char *doing) {
  char what[64];
  snprintf(what, sizeof what, "no answer within %g s", d->timeout_s);
  daemon_fail(d, what, doing);
}

/* Wait until the socket is ready for events; error 11 at the deadline. */
static void wait_for(const struct daemon *d, short events, const char *doing) {
  for (;;) {
    long long left = d->deadline_ms - now_ms();
    if (left <= 0) expired(d, doing);
    struct pollfd p = {.fd = d->fd, .events = events};
    int rc = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
    if (rc > 0) return;
    if (rc < 0 && errno != EINTR) cni_fail(CNI_ERR_IO, "cannot wait for the netctl daemon", strerror(errno));
  }
}

/*
 * Connect to the daemon's socket; 0 when no daemon is there (no socket
 * file, or nobody listening: a daemon that stopped). Any other failure
 * (say EACCES) means a daemon may well be there: going around it would
 * split the state, so that is an error, as the CLI makes it.
 */
static int connect_daemon(struct daemon *d) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(d->path) >= sizeof addr.sun_path)
    cni_fail(CNI_ERR_IO, "NETCTL_SOCKET path is too long", d->path);
  strcpy(addr.sun_path, d->path);
  d->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (d->fd < 0) cni_fail(CNI_ERR_IO, "cannot make a socket", strerror(errno));
  while (connect(d->fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    int err = errno;
    if (err == ENOENT || err == ECONNREFUSED) {
      close(d->fd);
      return 0;
    }
    /* EAGAIN: the listen backlog is full, a daemon is there and not
     * accepting. A unix socket cannot be polled for that: retry. */
    if (err == EAGAIN) {
      if (now_ms() >= d->deadline_ms) expired(d, "connecting: its listen backlog stayed full");
      poll(NULL, 0, 10);
    } else if (err != EINTR) {
      cni_fail(CNI_ERR_IO, "cannot reach the netctl daemon", strerror(err));
    }
  }
  return 1;
}

static void send_all(const struct daemon *d, const char *data, size_t len) {
  while (len) {
    /* MSG_NOSIGNAL: a daemon that goes away is an error to report, not a SIGPIPE to die of. */
    ssize_t n = send(d->fd, data, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EAGAIN) wait_for(d, POLLOUT, "sending the request");
    else if (n < 0 && errno != EINTR)
      daemon_fail(d, "it dropped the connection while we sent", strerror(errno));
    if (n <= 0) continue;
    data += n;
    len -= (size_t)n;
  }
}

/* Read what the daemon sends next into b; 0 at the end of the stream. */
static size_t read_some(const struct daemon *d, struct buf *b, const char *doing) {
  char chunk[65536];
  for (;;) {
    ssize_t n = read(d->fd, chunk, sizeof chunk);
    if (n >= 0) {
      put(b, chunk, (size_t)n);
      return (size_t)n;
    }
    if (errno == EAGAIN) wait_for(d, POLLIN, doing);
    else if (errno != EINTR)
      daemon_fail(d, "it dropped the connection while we read its answer", strerror(errno));
  }
}

/* The daemon's answer, as POST /v1/cni writes it (src/server/cni.ts). */
struct answer {
  struct buf raw; /* header and body as received */
  size_t body;    /* where the body starts in raw */
  int status;
  long length; /* Content-Length */
  long exit;   /* Netctl-Cni-Exit, -1 when absent */
};

/* Decimal digits only, at most max; -1 otherwise. */
static long number(const char *s, long max) {
  if (!*s || s[strspn(s, "0123456789")] || strlen(s) > 9) return -1;
  long n = strtol(s, NULL, 10);
  return n <= max ? n : -1;
}

/*
 * Check a header (NUL-terminated, without its blank line) and take its
 * status, Content-Length and Netctl-Cni-Exit: NULL when it is HTTP/1.1 as
 * the daemon writes it, else what is wrong with it.
 */
static const char *parse_header(char *head, struct answer *a) {
  if (strncmp(head, "HTTP/1.1 ", 9) != 0 || strspn(head + 9, "0123456789") != 3 ||
      (head[12] != ' ' && head[12] != '\r' && head[12] != 0))
    return "no HTTP/1.1 status line";
  a->status = atoi(head + 9);
  a->length = a->exit = -1;
  char *next;
  for (char *line = strstr(head, "\r\n"); line; line = next) {
    line += 2;
    next = strstr(line, "\r\n");
    if (next) *next = 0;
    char *colon = strchr(line, ':');
    if (!colon || colon == line) return "a header line that is not a field";
    *colon = 0;
    char *value = colon + 1 + strspn(colon + 1, " \t");
    for (char *e = value + strlen(value); e > value && (e[-1] == ' ' || e[-1] == '\t');) *--e = 0;
    if (strcasecmp(line, "Content-Length") == 0) {
      if (a->length >= 0 || (a->length = number(value, MAX_BODY)) < 0)
        return "a bad or repeated Content-Length";
    } else if (strcasecmp(line, "Netctl-Cni-Exit") == 0) {
      if (a->exit >= 0 || (a->exit = number(value, 255)) < 0)
        return "a bad or repeated Netctl-Cni-Exit";
    } else if (strcasecmp(line, "Transfer-Encoding") == 0) {
      return "a Transfer-Encoding (the daemon sends a Content-Length)";
    }
  }
  return a->length < 0 ? "no Content-Length" : NULL;
}

/* The first line of what the daemon sent (parse_header leaves it whole),
 * printable ASCII only: an error's details. */
static void first_line(char *dst, size_t size, const struct buf *b) {
  size_t i = 0;
  for (; i < b->len && i + 1 < size && b->data[i] && b->data[i] != '\r' && b->data[i] != '\n'; i++) {
    unsigned char c = (unsigned char)b->data[i];
    dst[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
  }
  dst[i] = 0;
}

static void malformed(const struct daemon *d, const struct buf *b, const char *problem) {
  char what[128], details[96];
  snprintf(what, sizeof what, "its answer is not HTTP/1.1 as netctl writes it: %s", problem);
  first_line(details, sizeof details, b);
  daemon_fail(d, what, *details ? details : NULL);
}

/* Read the header, then Content-Length bytes of body: not up to the end of
 * the stream, which a daemon may keep open after a whole answer. */
static struct answer read_answer(const struct daemon *d) {
  struct answer a = {0};
  char what[128];
  char *blank;
  while (!(blank = a.raw.len ? memmem(a.raw.data, a.raw.len, "\r\n\r\n", 4) : NULL)) {
    /* Not HTTP from its first bytes on: say so now, not at the deadline. */
    if (a.raw.len && memcmp(a.raw.data, "HTTP/1.1 ", a.raw.len < 9 ? a.raw.len : 9) != 0)
      malformed(d, &a.raw, "no HTTP/1.1 status line");
    if (a.raw.len > MAX_HEADER) malformed(d, &a.raw, "a header of more than 16 KiB");
    if (read_some(d, &a.raw, "waiting for its answer") == 0) {
      if (a.raw.len == 0) daemon_fail(d, "it closed the connection without answering", NULL);
      snprintf(what, sizeof what, "it closed the connection %zu bytes into its answer's header", a.raw.len);
      daemon_fail(d, what, NULL);
    }
  }
  size_t head_len = (size_t)(blank - a.raw.data);
  a.body = head_len + 4;
  *blank = 0;
  const char *problem =
      memchr(a.raw.data, 0, head_len) ? "a NUL byte in the header" : parse_header(a.raw.data, &a);
  if (problem) malformed(d, &a.raw, problem);
  while (a.raw.len - a.body < (size_t)a.length) {
    if (read_some(d, &a.raw, "reading its answer's body") == 0) {
      snprintf(what, sizeof what, "it closed the connection after %zu of its answer's %ld body bytes",
               a.raw.len - a.body, a.length);
      daemon_fail(d, what, NULL);
    }
  }
  a.raw.data[a.body + (size_t)a.length] = 0; /* bytes past Content-Length (there are none) are ignored */
  return a;
}

int main(int argc, char **argv) {
  const char *plugin = plugin_name(argc > 0 ? argv[0] : NULL);
  struct daemon d = {.timeout_s = exchange_timeout()};
  struct buf config = read_stdin();
  d.path = getenv("NETCTL_SOCKET") ? getenv("NETCTL_SOCKET") : "/run/netctl/api.sock";
  d.deadline_ms = now_ms() + (long long)(d.timeout_s * 1000);
  if (!connect_daemon(&d)) run_in_process(plugin, &config);

  struct buf body = {0};
  puts_(&body, "{\"env\":{");
  int first = 1;
  for (const char *const *var = CNI_VARS; *var; var++) {
    const char *value = getenv(*var);
    if (!value) continue;
    if (!first) puts_(&body, ",");
    first = 0;
    put_json_string(&body, *var, strlen(*var));
    puts_(&body, ":");
    put_json_string(&body, value, strlen(value));
  }
  puts_(&body, "},\"plugin\":\"");
  puts_(&body, plugin);
  puts_(&body, "\",\"config\":");
  put_json_string(&body, config.data, config.len);
  puts_(&body, "}");

  char head[256];
  int n = snprintf(head, sizeof head,
                   "POST /v1/cni HTTP/1.1\r\nHost: netctl\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                   body.len);
  send_all(&d, head, (size_t)n);
  send_all(&d, body.data, body.len);

  struct answer a = read_answer(&d);
  close(d.fd);
  const char *payload = a.raw.data + a.body;
  if (a.status != 200 || a.exit < 0) {
    /* An older daemon without /v1/cni (404), or a request it refused: its
     * error body says why, and asking again will not change it. */
    cni_fail(CNI_ERR_IO, "the netctl daemon did not answer the CNI request", payload);
  }
  fwrite(payload, 1, (size_t)a.length, stdout);
  return (int)a.exit;
}
