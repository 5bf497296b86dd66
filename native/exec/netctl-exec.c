/*
 * netctl-exec: run a command inside a sandbox's network namespace, with the
 * sandbox's own resolv.conf/hosts/hostname — what `ip netns exec` does for
 * /etc/netns/NAME, without a shell and without touching the caller.
 *
 *   netctl-exec --netns PATH [--etc DIR] [--hostname NAME] -- CMD [ARGS...]
 *
 * --etc DIR: every regular file in DIR is bind-mounted over /etc/<file> in a
 * private mount namespace (so only this command sees it). /sys is remounted
 * so /sys/class/net shows the sandbox's links, as ip-netns(8) does.
 * Exit status: the command's, or 125 when netctl-exec itself fails (the
 * convention of `docker run`).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXIT_SETUP 125

static void fail(const char *what, const char *arg) {
  fprintf(stderr, "netctl-exec: %s%s%s: %s\n", what, arg ? " " : "", arg ? arg : "", strerror(errno));
  exit(EXIT_SETUP);
}

static void usage(void) {
  fprintf(stderr, "usage: netctl-exec --netns PATH [--etc DIR] [--hostname NAME] -- CMD [ARGS...]\n");
  exit(EXIT_SETUP);
}

static void bind_etc_files(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) fail("cannot open", dir);
  struct dirent *entry;
  while ((entry = readdir(d)) != NULL) {
    if (entry->d_name[0] == '.') continue;
    char source[4096], target[4096];
    snprintf(source, sizeof source, "%s/%s", dir, entry->d_name);
    snprintf(target, sizeof target, "/etc/%s", entry->d_name);
    struct stat st;
    if (stat(source, &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (access(target, F_OK) != 0) continue; /* never create files in the host's /etc */
    if (mount(source, target, "none", MS_BIND, NULL) != 0) fail("cannot bind-mount", target);
  }
  closedir(d);
}

int main(int argc, char **argv) {
  const char *netns = NULL, *etc = NULL, *hostname = NULL;
  int i = 1;
  for (; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) { i++; break; }
    if (i + 1 >= argc) usage();
    if (strcmp(argv[i], "--netns") == 0) netns = argv[++i];
    else if (strcmp(argv[i], "--etc") == 0) etc = argv[++i];
    else if (strcmp(argv[i], "--hostname") == 0) hostname = argv[++i];
    else usage();
  }
  if (!netns || i >= argc) usage();

  int fd = open(netns, O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open netns", netns);
  if (setns(fd, CLONE_NEWNET) != 0) fail("cannot enter netns", netns);
  close(fd);

  if (etc || hostname) {
    if (unshare(CLONE_NEWNS | (hostname ? CLONE_NEWUTS : 0)) != 0) fail("cannot unshare", NULL);
    /* Our mounts must not propagate back to the host. */
    if (mount("", "/", "none", MS_SLAVE | MS_REC, NULL) != 0) fail("cannot make / a slave mount", NULL);
    if (umount2("/sys", MNT_DETACH) == 0 && mount("sysfs", "/sys", "sysfs", 0, NULL) != 0) {
      fail("cannot remount", "/sys");
    }
    if (etc) bind_etc_files(etc);
    if (hostname && sethostname(hostname, strlen(hostname)) != 0) fail("cannot set hostname", hostname);
  }

  execvp(argv[i], &argv[i]);
  fprintf(stderr, "netctl-exec: cannot run %s: %s\n", argv[i], strerror(errno));
  return errno == ENOENT ? 127 : 126;
}
