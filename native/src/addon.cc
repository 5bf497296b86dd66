// netctl's native addon: only what Node cannot do itself — create, enter and
// delete network namespaces. Everything else (netlink, sysctls, files) is JS.
//
// Errors are thrown Node-style: an Error with errno (negative, like libuv),
// code ("ENOENT"), syscall and path, so the kernel layer can branch on them.

#include <napi.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

#include <fcntl.h>
#include <linux/nsfs.h>
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

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("createNamedNetns", Napi::Function::New(env, CreateNamedNetns));
  exports.Set("createAnonymousNetns", Napi::Function::New(env, CreateAnonymousNetns));
  exports.Set("deleteNamedNetns", Napi::Function::New(env, DeleteNamedNetns));
  exports.Set("setNetns", Napi::Function::New(env, SetNetns));
  exports.Set("namespaceType", Napi::Function::New(env, NamespaceType));
  exports.Set("CLONE_NEWNET", Napi::Number::New(env, CLONE_NEWNET));
  return exports;
}

}  // namespace

NODE_API_MODULE(netctl_native, Init)
