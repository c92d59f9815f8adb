// A model folder's safetensors: one file, or the shards an index (model.safetensors.index.json)
// names, each tensor in exactly the file the index says.
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "base/errors.h"
#include "base/json.h"
#include "base/strings.h"
#include "io/safetensors.h"

namespace shardtune::io::safetensors {

namespace fs = std::filesystem;
using base::printable;
using nlohmann::json;

bool Folder::exists(const std::string& dir, const std::string& stem) {
  return fs::is_regular_file(fs::path(dir) / (stem + ".safetensors")) ||
         fs::is_regular_file(fs::path(dir) / (stem + ".safetensors.index.json"));
}

Folder Folder::open(const std::string& dir, const std::string& stem, const ParseOptions& options) {
  Folder folder;
  folder.dir_ = dir;
  const fs::path single = fs::path(dir) / (stem + ".safetensors");
  const fs::path index = fs::path(dir) / (stem + ".safetensors.index.json");
  if (fs::is_regular_file(single)) {
    folder.files_.push_back(File::open(single.string(), options));
    for (const auto& t : folder.files_[0]->tensors()) folder.where_[t.name] = 0;
    return folder;
  }
  if (!fs::is_regular_file(index)) {
    std::string hint;
    if (fs::exists(fs::path(dir) / "pytorch_model.bin") ||
        fs::exists(fs::path(dir) / "pytorch_model.bin.index.json")) {
      hint =
          "; it holds only pickled PyTorch weights (pytorch_model.bin), which ShardTune never "
          "loads: convert them to safetensors first";
    }
    throw UserError(dir + ": no " + stem + ".safetensors or " + stem + ".safetensors.index.json" +
                    hint);
  }
  const std::string ipath = index.string();
  std::ifstream in(ipath, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) throw UserError(ipath + ": cannot read");
  if (text.size() > options.max_header_bytes)
    throw UserError(ipath + ": index is larger than the header limit");
  const json j = base::parse_json_strict(text, ipath);
  if (!j.is_object()) throw UserError(ipath + ": index is not a JSON object");
  const auto map_it = j.find("weight_map");
  if (map_it == j.end() || !map_it->is_object())
    throw UserError(ipath + ": 'weight_map' is missing or not an object");
  std::map<std::string, size_t> file_index;     // file name -> index in files_
  std::map<std::string, std::string> expected;  // tensor -> file name
  for (const auto& [tensor, file_json] : map_it->items()) {
    if (!file_json.is_string())
      throw UserError(ipath + ": weight_map '" + printable(tensor) + "' is not a string");
    const std::string name = file_json.get<std::string>();
    const fs::path rel(name);
    bool escapes = name.empty() || rel.is_absolute() || name.find('\\') != std::string::npos;
    for (const auto& part : rel) escapes = escapes || part == ".." || part == ".";
    if (escapes) {
      throw UserError(ipath + ": weight_map '" + printable(tensor) + "' names file '" +
                      printable(name) + "', which is not a plain path inside the folder");
    }
    if (!file_index.count(name)) {
      const fs::path p = fs::path(dir) / rel;
      if (!fs::is_regular_file(p)) {
        throw UserError(ipath + ": weight_map '" + printable(tensor) + "' names missing file '" +
                        printable(name) + "'");
      }
      file_index[name] = folder.files_.size();
      folder.files_.push_back(File::open(p.string(), options));
    }
    expected[tensor] = name;
  }
  if (expected.empty()) throw UserError(ipath + ": weight_map is empty");
  for (const auto& [tensor, name] : expected) {
    const size_t i = file_index.at(name);
    if (!folder.files_[i]->find(tensor)) {
      throw UserError(ipath + ": weight_map puts tensor '" + printable(tensor) + "' in '" +
                      printable(name) + "', which does not hold it");
    }
    folder.where_[tensor] = i;
  }
  for (const auto& [name, i] : file_index) {
    for (const auto& t : folder.files_[i]->tensors()) {
      auto it = expected.find(t.name);
      if (it == expected.end() || it->second != name) {
        throw UserError(folder.files_[i]->path() + ": tensor '" + printable(t.name) +
                        "' is not mapped to this file by " + stem + ".safetensors.index.json");
      }
    }
  }
  return folder;
}

std::vector<std::string> Folder::names() const {
  std::vector<std::string> out;
  for (const auto& item : where_) out.push_back(item.first);
  return out;
}

const File* Folder::file_of(const std::string& name) const {
  auto it = where_.find(name);
  return it == where_.end() ? nullptr : files_[it->second].get();
}

const TensorInfo* Folder::find(const std::string& name) const {
  const File* f = file_of(name);
  return f ? f->find(name) : nullptr;
}

uint64_t Folder::total_file_bytes() const {
  uint64_t total = 0;
  for (const auto& f : files_) total += f->size();
  return total;
}

}  // namespace shardtune::io::safetensors
