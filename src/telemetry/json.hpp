// Layer telemetry: includes base, os.
// A small, strict JSON reader (RFC 8259) for reading traces back: hetmm writes its Chrome traces
// itself and needs to read only those, so a recursive-descent parser of a few hundred lines is
// preferable to a dependency. Strict: no comments, no trailing commas, no NaN, no leading zeros,
// no control characters or invalid escapes in strings, one value then only whitespace. Every
// value keeps its line and column so that callers can name where a bad field is. Errors are
// hetmm::Error(invalid_argument) whose message starts with "line L, column C:". Nesting is
// bounded (kMaxDepth) so that hostile input cannot overflow the stack.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hetmm::telemetry::json {

inline constexpr unsigned kMaxDepth = 256;

struct Value {
  enum class Type { null, boolean, number, string, array, object };
  Type type = Type::null;
  bool boolean = false;
  std::string text;                // a string's contents (UTF-8), or a number's literal
  std::vector<Value> items;        // array elements, or object member values
  std::vector<std::string> keys;   // object member names, parallel to items
  unsigned line = 0, column = 0;   // where the value starts (1-based)

  bool is(Type t) const { return type == t; }
  // The first member named key, or null.
  const Value* find(std::string_view key) const;
  // Numbers; they throw (naming this value's position) when the literal does not fit.
  double as_double() const;
  std::uint64_t as_u64() const;  // a non-negative integer literal
  std::int64_t as_i64() const;   // an integer literal
};

Value parse(std::string_view text);

// "line L, column C: what" as a hetmm::Error(invalid_argument), for callers' semantic errors.
[[noreturn]] void fail_at(const Value& where, const std::string& what);

}  // namespace hetmm::telemetry::json
