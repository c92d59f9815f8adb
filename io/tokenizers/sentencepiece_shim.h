// C interface of libshardtune_sentencepiece.so, the one place that links libsentencepiece.
//
// Why a separate shared library: Debian's libsentencepiece0 carries its own copy of protobuf-lite
// (3.14) and exports those symbols, while LibTorch brings libprotobuf 3.21. Linked into one
// program they bind to each other's functions and the program crashes before main() (measured:
// SIGSEGV in libprotobuf's static initialisation; with the link order swapped, sentencepiece
// aborts on the version check). SentencePieceTokenizer therefore dlopen()s this library with
// RTLD_LOCAL | RTLD_DEEPBIND, so sentencepiece resolves to its own protobuf and nothing else sees
// it. Only plain C types cross this boundary.
#pragma once

#include <stddef.h>

// The library is built with hidden visibility; these are its only exported symbols.
#define STSP_EXPORT __attribute__((visibility("default")))

extern "C" {

struct stsp_model;

// Loads a serialized ModelProto. nullptr on failure, with a message in err (NUL-terminated).
STSP_EXPORT stsp_model* stsp_load(const char* data, size_t size, char* err, size_t err_size);
STSP_EXPORT void stsp_free(stsp_model* m);
STSP_EXPORT int stsp_piece_size(const stsp_model* m);
// which: 0 BOS, 1 EOS, 2 pad, 3 unk; -1 when the model has none.
STSP_EXPORT int stsp_special_id(const stsp_model* m, int which);
// -1 when `piece` is not a piece (sentencepiece's own lookup answers unk for those).
STSP_EXPORT int stsp_piece_to_id(const stsp_model* m, const char* piece, size_t size);
// The piece's bytes (valid while the model lives), or nullptr for an id out of range.
STSP_EXPORT const char* stsp_id_to_piece(const stsp_model* m, int id, size_t* size);
// Bit 0: control piece; bit 1: the unknown piece.
STSP_EXPORT int stsp_piece_type(const stsp_model* m, int id);
// Encodes UTF-8 text. Writes up to `capacity` ids and the full count to *count; 0 on success
// (call again with a larger buffer if *count > capacity), nonzero with a message in err.
STSP_EXPORT int stsp_encode(const stsp_model* m, const char* text, size_t size, int* ids, size_t capacity,
                size_t* count, char* err, size_t err_size);
// Decodes ids (control pieces dropped). Same buffer protocol, in bytes.
STSP_EXPORT int stsp_decode(const stsp_model* m, const int* ids, size_t n, char* out, size_t capacity,
                size_t* size, char* err, size_t err_size);

}  // extern "C"
