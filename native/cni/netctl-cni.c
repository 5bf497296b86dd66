/*
 * netctl-cni: the binary a container runtime execs once per container.
 *
 * Starting Node costs more than a whole ADD of the reference bridge plugin,
 * so this small program only forwards: it sends the CNI_* environment and
 * the config read from stdin to the running netctl daemon
 * (POST /v1/cni on its unix socket), prints the body of the answer and
 * exits with the status the daemon names in the Netctl-Cni-Exit header.
 * When no daemon answers, it runs the same plugin in-process with node
 * (slower, same results): the config goes back on stdin through a memfd.
 *
 * One binary, two plugins: executed as netctl-ipam (a symlink to it, as
 * `netctl cni install` makes) it is netctl's IPAM plugin, otherwise
 * netctl-cni. The name is taken from argv[0], which runtimes set to the
 * plugin's path (libcni's invoke does).
 *
 * Environment: NETCTL_SOCKET (default /run/netctl/api.sock),
 * NETCTL_CNI_NODE_MAIN (the in-process entry point; default next to this
 * binary: ../../../dist/src/cni/main.js), NETCTL_NODE (default "node" on
 * PATH, then /usr/bin/node and /usr/local/bin/node: runtimes may run
 * plugins with a short PATH).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* CNI spec error codes (SPEC.md "Error"): 5 = I/O failure. */
#define CNI_ERR_IO 5
/* As src/cni/skel.ts MAX_CONFIG_BYTES. */
#define MAX_CONFIG (1024 * 1024)

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
 * Connect to the daemon's socket; -1 when no daemon is there (no socket
 * file, or nobody listening: a daemon that stopped). Any other failure
 * (say EACCES) means a daemon may well be there: going around it would
 * split the state, so that is an error, as the CLI makes it.
 */
static int connect_daemon(const char *path) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof addr.sun_path) cni_fail(CNI_ERR_IO, "NETCTL_SOCKET path is too long", path);
  strcpy(addr.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) cni_fail(CNI_ERR_IO, "cannot make a socket", strerror(errno));
  int rc;
  do rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
  while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    int err = errno;
    close(fd);
    if (err == ENOENT || err == ECONNREFUSED) return -1;
    cni_fail(CNI_ERR_IO, "cannot reach the netctl daemon", strerror(err));
  }
  return fd;
}

static void write_all(int fd, const char *data, size_t len) {
  while (len) {
    /* MSG_NOSIGNAL: a daemon that goes away is an error to report, not a SIGPIPE to die of. */
    ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) cni_fail(CNI_ERR_IO, "lost the netctl daemon while sending", strerror(errno));
    data += n;
    len -= (size_t)n;
  }
}

int main(int argc, char **argv) {
  const char *plugin = plugin_name(argc > 0 ? argv[0] : NULL);
  struct buf config = read_stdin();
  const char *socket_path = getenv("NETCTL_SOCKET") ? getenv("NETCTL_SOCKET") : "/run/netctl/api.sock";
  int fd = connect_daemon(socket_path);
  if (fd < 0) run_in_process(plugin, &config);

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
  write_all(fd, head, (size_t)n);
  write_all(fd, body.data, body.len);

  struct buf reply = {0};
  char chunk[65536];
  for (;;) {
    ssize_t got = read(fd, chunk, sizeof chunk);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) cni_fail(CNI_ERR_IO, "lost the netctl daemon while reading its answer", strerror(errno));
    if (got == 0) break;
    put(&reply, chunk, (size_t)got);
  }
  close(fd);
  char *end = reply.data ? strstr(reply.data, "\r\n\r\n") : NULL;
  if (!end) cni_fail(CNI_ERR_IO, "the netctl daemon's answer was cut short", NULL);
  *end = 0;
  const char *exit_header = strcasestr(reply.data, "\r\nNetctl-Cni-Exit:");
  const char *payload = end + 4;
  if (!exit_header || strncmp(reply.data, "HTTP/1.1 200", 12) != 0) {
    /* An older daemon without /v1/cni (404), or a request it refused: its error body says why. */
    cni_fail(CNI_ERR_IO, "the netctl daemon did not answer the CNI request", payload);
  }
  int status = atoi(exit_header + strlen("\r\nNetctl-Cni-Exit:"));
  /* The daemon always answers with Content-Length and no chunking (Connection: close). */
  fwrite(payload, 1, reply.len - (size_t)(payload - reply.data), stdout);
  return status;
}
