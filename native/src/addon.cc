// netctl's native addon: only what Node cannot do itself — create, enter and
// delete network namespaces. Everything else (netlink, sysctls, files) is JS.
//
// Errors are thrown Node-style: an Error with errno (negative, like libuv),
// code ("ENOENT"), syscall and path, so the kernel layer can branch on them.

#include <napi.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/nsfs.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

struct SysError {
  int err;
  const char* syscall;
};

Napi::Error errnoError(Napi::Env env, int err, const char* syscall, const std::string& path) {
  const char* name = strerrorname_np(err);
  std::string message = std::string(name ? name : "EUNKNOWN") + ": " + strerror(err) + ", " + syscall;
  if (!path.empty()) message += " '" + path + "'";
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("errno", Napi::Number::New(env, -err));
  error.Set("code", Napi::String::New(env, name ? name : "EUNKNOWN"));
  error.Set("syscall", Napi::String::New(env, syscall));
  if (!path.empty()) error.Set("path", Napi::String::New(env, path));
  return error;
}

std::string stringArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsString()) {
    throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a string");
  }
  return info[i].As<Napi::String>().Utf8Value();
}

int fdArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a file descriptor");
  }
  return info[i].As<Napi::Number>().Int32Value();
}

// Runs fn on a short-lived thread so unshare(CLONE_NEWNET) never touches the
// thread that runs JavaScript; the new namespace dies with the thread unless
// fn pins it (bind mount or an open fd).
template <class Fn>
SysError onFreshNetnsThread(Fn fn) {
  SysError result{0, ""};
  std::thread worker([&] {
    if (unshare(CLONE_NEWNET) != 0) {
      result = {errno, "unshare"};
      return;
    }
    result = fn();
  });
  worker.join();
  return result;
}

// `ip netns add` makes the namespace directory a shared mount point so that
// namespaces created later propagate to other mount namespaces (iproute2
// ip/ipnetns.c: netns_add). Same here.
SysError makeSharedMountDir(const std::string& dir) {
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return {errno, "mkdir"};
  for (bool bound = false;; bound = true) {
    if (mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) == 0) return {0, ""};
    if (errno != EINVAL || bound) return {errno, "mount"};
    // Not a mount point yet: bind it onto itself, then retry.
    if (mount(dir.c_str(), dir.c_str(), "none", MS_BIND | MS_REC, nullptr) != 0) return {errno, "mount"};
  }
}

// createNamedNetns(path): a new netns pinned by a bind mount at path, as `ip
// netns add` does. Fails with EEXIST if path exists.
void CreateNamedNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = stringArg(info, 0);
  std::string dir = path.substr(0, path.find_last_of('/'));
  if (dir.empty()) throw Napi::TypeError::New(env, "netns path must be absolute");

  SysError shared = makeSharedMountDir(dir);
  if (shared.err) throw errnoError(env, shared.err, shared.syscall, dir);

  int fd = open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd < 0) throw errnoError(env, errno, "open", path);
  close(fd);

  SysError made = onFreshNetnsThread([&]() -> SysError {
    if (mount("/proc/thread-self/ns/net", path.c_str(), "none", MS_BIND, nullptr) != 0) return {errno, "mount"};
    return {0, ""};
  });
  if (made.err) {
    unlink(path.c_str());
    throw errnoError(env, made.err, made.syscall, path);
  }
}

// createAnonymousNetns(): a new netns held only by the returned fd; it is
// freed by the kernel when the fd and every socket/link in it are gone.
Napi::Value CreateAnonymousNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  SysError made = onFreshNetnsThread([&]() -> SysError {
    fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return {errno, "open"};
    return {0, ""};
  });
  if (made.err) throw errnoError(env, made.err, made.syscall, "");
  return Napi::Number::New(env, fd);
}

// pinNetns(source, path): pin the netns behind source (e.g. /proc/self/ns/net)
// with a bind mount at path, like `ip netns attach`. EEXIST if path exists.
void PinNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string source = stringArg(info, 0);
  std::string path = stringArg(info, 1);
  int fd = open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd < 0) throw errnoError(env, errno, "open", path);
  close(fd);
  if (mount(source.c_str(), path.c_str(), "none", MS_BIND, nullptr) != 0) {
    int err = errno;
    unlink(path.c_str());
    throw errnoError(env, err, "mount", path);
  }
}

// deleteNamedNetns(path): lazily unmount and remove the pin, like `ip netns
// del`. ENOENT is reported so callers can treat "already gone" as success.
void DeleteNamedNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = stringArg(info, 0);
  // EINVAL: not a mount point (a half-created pin); still remove the file.
  if (umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL) {
    throw errnoError(env, errno, "umount2", path);
  }
  if (unlink(path.c_str()) != 0) throw errnoError(env, errno, "unlink", path);
}

// setNetns(fd): move the calling thread into the netns behind fd.
void SetNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = fdArg(info, 0);
  if (setns(fd, CLONE_NEWNET) != 0) throw errnoError(env, errno, "setns", "");
}

// namespaceType(fd): the CLONE_NEW* type of the namespace behind fd.
Napi::Value NamespaceType(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = fdArg(info, 0);
  int type = ioctl(fd, NS_GET_NSTYPE);
  if (type < 0) throw errnoError(env, errno, "ioctl", "");
  return Napi::Number::New(env, type);
}

// deleteLink(netnsFd, ifindex, callback): RTM_DELLINK sent from a
// short-lived thread inside the namespace. The kernel answers a link delete
// only after an RCU grace period and the last device reference (~15-20 ms
// here), all inside sendmsg; on the JS thread that would stall the event
// loop. The thread also listens on RTNLGRP_LINK and reports as soon as the
// link is unregistered (gone from the namespace, its name free), then again
// with the kernel's final answer:
//   callback(null, "unregistered") at most once, then callback(errno|0, "done").
struct DeleteResult {
  const char* phase;
  int err;
};

static int netlinkSocket(unsigned groups) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return -1;
  sockaddr_nl addr{};
  addr.nl_family = AF_NETLINK;
  addr.nl_groups = groups;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

// Reports the link's RTM_DELLINK notification; runs beside the thread that
// is blocked in send() for the whole delete. Stops when stop becomes readable.
static void watchUnregister(int monitor, int stop, int ifindex, const std::function<void(const char*, int)>& report) {
  alignas(nlmsghdr) char buffer[16384];
  for (;;) {
    pollfd fds[2] = {{monitor, POLLIN, 0}, {stop, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    ssize_t n = recv(monitor, buffer, sizeof buffer, MSG_DONTWAIT);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buffer); n > 0 && NLMSG_OK(h, static_cast<unsigned>(n));
         h = NLMSG_NEXT(h, n)) {
      auto* info = static_cast<ifinfomsg*>(NLMSG_DATA(h));
      if (h->nlmsg_type == RTM_DELLINK && info->ifi_index == ifindex) {
        report("unregistered", 0);
        return;
      }
    }
  }
}

static int deleteLinkInThread(int nsFd, int ifindex, const std::function<void(const char*, int)>& report) {
  if (setns(nsFd, CLONE_NEWNET) != 0) return errno;
  int monitor = netlinkSocket(RTMGRP_LINK);
  if (monitor < 0) return errno;
  int request = netlinkSocket(0);
  int stop = eventfd(0, EFD_CLOEXEC);
  if (request < 0 || stop < 0) {
    int saved = errno;
    close(monitor);
    if (request >= 0) close(request);
    if (stop >= 0) close(stop);
    return saved;
  }
  std::thread watcher(watchUnregister, monitor, stop, ifindex, std::cref(report));
  struct {
    nlmsghdr header;
    ifinfomsg info;
  } message{};
  message.header.nlmsg_len = sizeof message;
  message.header.nlmsg_type = RTM_DELLINK;
  message.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  message.header.nlmsg_seq = 1;
  message.info.ifi_family = AF_UNSPEC;
  message.info.ifi_index = ifindex;
  int result = 0;
  // The kernel does the whole delete, RCU wait included, inside this send().
  if (send(request, &message, sizeof message, 0) < 0) {
    result = errno;
  } else {
    alignas(nlmsghdr) char buffer[4096];
    ssize_t n;
    do n = recv(request, buffer, sizeof buffer, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) result = errno;
    for (auto* h = reinterpret_cast<nlmsghdr*>(buffer); n > 0 && NLMSG_OK(h, static_cast<unsigned>(n));
         h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type == NLMSG_ERROR) result = -static_cast<nlmsgerr*>(NLMSG_DATA(h))->error;
    }
  }
  uint64_t one = 1;
  if (write(stop, &one, sizeof one) < 0) {
    // eventfd writes only fail on overflow, which one write cannot cause.
  }
  watcher.join();
  close(stop);
  close(request);
  close(monitor);
  return result;
}

// The thread may outlive the JS environment that asked (a worker thread
// terminated mid-delete): once the environment's cleanup hook has run, the
// thread-safe function is gone and must not be touched.
struct DeleteCall {
  std::mutex lock;
  bool envGone = false;
  Napi::ThreadSafeFunction callback;

  void report(const char* phase, int err) {
    std::lock_guard<std::mutex> guard(lock);
    if (envGone) return;
    callback.NonBlockingCall(new DeleteResult{phase, err}, [](Napi::Env env, Napi::Function fn, DeleteResult* r) {
      Napi::Value error =
          r->err ? static_cast<Napi::Value>(errnoError(env, r->err, "RTM_DELLINK", "").Value()) : env.Null();
      fn.Call({error, Napi::String::New(env, r->phase)});
      delete r;
    });
  }

  static void onEnvCleanup(void* arg) {
    auto* self = static_cast<std::shared_ptr<DeleteCall>*>(arg);
    std::lock_guard<std::mutex> guard((*self)->lock);
    (*self)->envGone = true;
  }
};

void DeleteLink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int nsFd = fdArg(info, 0);
  int ifindex = fdArg(info, 1);
  if (info.Length() < 3 || !info[2].IsFunction()) throw Napi::TypeError::New(env, "argument 2 must be a function");
  // The thread owns its own copy of the namespace fd: the caller may close theirs.
  int ownFd = fcntl(nsFd, F_DUPFD_CLOEXEC, 0);
  if (ownFd < 0) throw errnoError(env, errno, "fcntl", "");
  auto call = std::make_shared<DeleteCall>();
  call->callback = Napi::ThreadSafeFunction::New(env, info[2].As<Napi::Function>(), "netctl.deleteLink", 0, 1);
  // Registered after the thread-safe function, so it runs before its teardown (hooks run in reverse).
  auto* hookArg = new std::shared_ptr<DeleteCall>(call);
  napi_add_env_cleanup_hook(env, DeleteCall::onEnvCleanup, hookArg);
  napi_env rawEnv = env;
  std::thread([call, ownFd, ifindex, hookArg, rawEnv]() {
    int err = deleteLinkInThread(ownFd, ifindex, [&call](const char* phase, int e) { call->report(phase, e); });
    close(ownFd);
    std::lock_guard<std::mutex> guard(call->lock);
    if (call->envGone) return;  // hookArg is leaked with the dead environment: a few bytes, once.
    call->callback.NonBlockingCall(
        new DeleteResult{"done", err}, [hookArg, rawEnv](Napi::Env env, Napi::Function fn, DeleteResult* r) {
          // Back on the JS thread: the hook is no longer needed.
          napi_remove_env_cleanup_hook(rawEnv, DeleteCall::onEnvCleanup, hookArg);
          delete hookArg;
          Napi::Value error =
              r->err ? static_cast<Napi::Value>(errnoError(env, r->err, "RTM_DELLINK", "").Value()) : env.Null();
          fn.Call({error, Napi::String::New(env, r->phase)});
          delete r;
        });
    call->callback.Release();
  }).detach();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("deleteLink", Napi::Function::New(env, DeleteLink));
  exports.Set("createNamedNetns", Napi::Function::New(env, CreateNamedNetns));
  exports.Set("createAnonymousNetns", Napi::Function::New(env, CreateAnonymousNetns));
  exports.Set("deleteNamedNetns", Napi::Function::New(env, DeleteNamedNetns));
  exports.Set("pinNetns", Napi::Function::New(env, PinNetns));
  exports.Set("setNetns", Napi::Function::New(env, SetNetns));
  exports.Set("namespaceType", Napi::Function::New(env, NamespaceType));
  exports.Set("CLONE_NEWNET", Napi::Number::New(env, CLONE_NEWNET));
  return exports;
}

}  // namespace

NODE_API_MODULE(netctl_native, Init)
