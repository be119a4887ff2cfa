{
  "targets": [
    {
      "target_name": "snnl_native",
      "sources": ["snnl_native.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O3", "-fno-math-errno", "-fopenmp", "-fexceptions", "-frtti", "-Wno-unused-parameter"],
      "libraries": [
        "<!@(node ../scripts/native-libs.mjs)"
      ]
    }
  ]
}
