// A small JSON writer: the bench's output is one object, built in order, with no dependency.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hetmm::bench {

// Containers are written one member per line, or on one line when opened `flat` (and then
// everything inside them is flat too).
class JsonWriter {
 public:
  JsonWriter& begin_object(bool flat = false);
  JsonWriter& end_object();
  JsonWriter& begin_array(bool flat = false);
  JsonWriter& end_array();
  JsonWriter& key(std::string_view k);
  JsonWriter& value(std::string_view s);
  JsonWriter& value(const char* s) { return value(std::string_view(s)); }
  JsonWriter& value(double d);  // non-finite: null
  JsonWriter& value(std::uint64_t u);
  JsonWriter& value(bool b);
  JsonWriter& null();
  template <class T>
  JsonWriter& field(std::string_view k, const T& v) {
    return key(k).value(v);
  }
  const std::string& str() const { return out_; }

 private:
  struct Level {
    bool first = true;  // nothing written in it yet
    bool flat = false;
  };
  void separate();
  void open(char c, bool flat);
  void close(char c);
  std::string out_;
  std::vector<Level> levels_;
  bool after_key_ = false;
};

}  // namespace hetmm::bench
