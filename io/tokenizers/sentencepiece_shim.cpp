// libshardtune_sentencepiece.so: libsentencepiece behind the C interface of sentencepiece_shim.h.
#include "io/tokenizers/sentencepiece_shim.h"

#include <sentencepiece_processor.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

struct stsp_model {
  sentencepiece::SentencePieceProcessor sp;
};

namespace {

void set_error(char* err, size_t err_size, const std::string& message) {
  if (!err || err_size == 0) return;
  const size_t n = message.size() < err_size - 1 ? message.size() : err_size - 1;
  std::memcpy(err, message.data(), n);
  err[n] = '\0';
}

}  // namespace

extern "C" {

stsp_model* stsp_load(const char* data, size_t size, char* err, size_t err_size) {
  try {
    auto m = std::make_unique<stsp_model>();
    const auto status = m->sp.LoadFromSerializedProto(absl::string_view(data, size));
    if (!status.ok()) {
      set_error(err, err_size, status.ToString());
      return nullptr;
    }
    return m.release();
  } catch (const std::exception& e) {
    set_error(err, err_size, e.what());
    return nullptr;
  }
}

void stsp_free(stsp_model* m) { delete m; }

int stsp_piece_size(const stsp_model* m) { return m->sp.GetPieceSize(); }

int stsp_special_id(const stsp_model* m, int which) {
  switch (which) {
    case 0: return m->sp.bos_id();
    case 1: return m->sp.eos_id();
    case 2: return m->sp.pad_id();
    default: return m->sp.unk_id();
  }
}

int stsp_piece_to_id(const stsp_model* m, const char* piece, size_t size) {
  const absl::string_view p(piece, size);
  const int id = m->sp.PieceToId(p);
  if (id < 0 || id >= m->sp.GetPieceSize()) return -1;
  const std::string& back = m->sp.IdToPiece(id);
  return back.size() == size && std::memcmp(back.data(), piece, size) == 0 ? id : -1;
}

const char* stsp_id_to_piece(const stsp_model* m, int id, size_t* size) {
  if (id < 0 || id >= m->sp.GetPieceSize()) return nullptr;
  const std::string& piece = m->sp.IdToPiece(id);
  *size = piece.size();
  return piece.data();
}

int stsp_piece_type(const stsp_model* m, int id) {
  if (id < 0 || id >= m->sp.GetPieceSize()) return 0;
  return (m->sp.IsControl(id) ? 1 : 0) | (m->sp.IsUnknown(id) ? 2 : 0);
}

int stsp_encode(const stsp_model* m, const char* text, size_t size, int* ids, size_t capacity,
                size_t* count, char* err, size_t err_size) {
  try {
    std::vector<int> out;
    const auto status = m->sp.Encode(absl::string_view(text, size), &out);
    if (!status.ok()) {
      set_error(err, err_size, status.ToString());
      return 1;
    }
    *count = out.size();
    if (out.size() <= capacity && !out.empty()) std::memcpy(ids, out.data(), out.size() * sizeof(int));
    return 0;
  } catch (const std::exception& e) {
    set_error(err, err_size, e.what());
    return 1;
  }
}

int stsp_decode(const stsp_model* m, const int* ids, size_t n, char* out, size_t capacity,
                size_t* size, char* err, size_t err_size) {
  try {
    std::string text;
    const auto status = m->sp.Decode(std::vector<int>(ids, ids + n), &text);
    if (!status.ok()) {
      set_error(err, err_size, status.ToString());
      return 1;
    }
    *size = text.size();
    if (text.size() <= capacity && !text.empty()) std::memcpy(out, text.data(), text.size());
    return 0;
  } catch (const std::exception& e) {
    set_error(err, err_size, e.what());
    return 1;
  }
}

}  // extern "C"
