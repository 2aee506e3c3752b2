// What every shim in csrc/ shares: the failure path. A shim catches what libtorch throws and
// reports it as status 1 with the message in the caller's buffer, so no C++ exception ever
// crosses into Rust.
#pragma once

#include <cstddef>
#include <cstring>
#include <exception>

// Copies e.what() into err (NUL-terminated, at most err_len bytes) and returns 1.
inline int grn_fail(const std::exception &e, char *err, size_t err_len) {
    if (err != nullptr && err_len > 0) {
        std::strncpy(err, e.what(), err_len - 1);
        err[err_len - 1] = '\0';
    }
    return 1;
}
