/* A shared library that looks like ONNX Runtime to a loader: it exports
 * OrtGetApiBase, reports FAKE_ORT_VERSION, and provides no API (GetApi
 * returns NULL). fusion's inference tests build it with `cc -shared` to
 * check that a wrong-version or broken library is a typed error. */
#include <stddef.h>
#include <stdint.h>

#ifndef FAKE_ORT_VERSION
#error "define FAKE_ORT_VERSION, e.g. -DFAKE_ORT_VERSION=\"1.20.0\""
#endif

typedef struct OrtApiBase {
    const void *(*GetApi)(uint32_t version);
    const char *(*GetVersionString)(void);
} OrtApiBase;

static const void *get_api(uint32_t version) {
    (void)version;
    return NULL;
}

static const char *get_version_string(void) { return FAKE_ORT_VERSION; }

static const OrtApiBase base = {get_api, get_version_string};

const OrtApiBase *OrtGetApiBase(void) { return &base; }
