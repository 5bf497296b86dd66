{
  "targets": [
    {
      "target_name": "netctl_native",
      "sources": ["src/addon.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra"],
      "cflags_cc!": ["-fno-exceptions"]
    },
    {
      "target_name": "netctl-exec",
      "type": "executable",
      "sources": ["exec/netctl-exec.c"],
      "cflags": ["-std=c11", "-Wall", "-Wextra", "-O2"]
    },
    {
      "target_name": "netctl-cni",
      "type": "executable",
      "sources": ["cni/netctl-cni.c"],
      "cflags": ["-std=c11", "-Wall", "-Wextra", "-O2"]
    }
  ]
}
