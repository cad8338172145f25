#include "telemetry/json.hpp"

#include <hetmm/hetmm.hpp>

#include <charconv>
#include <cmath>

namespace hetmm::telemetry::json {

namespace {

[[noreturn]] void fail(unsigned line, unsigned column, const std::string& what) {
  throw Error(Errc::invalid_argument,
              "line " + std::to_string(line) + ", column " + std::to_string(column) + ": " + what);
}

std::string show(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u < 0x7f) return std::string("'") + c + "'";
  char buf[8];
  static const char* hex = "0123456789abcdef";
  buf[0] = '0';
  buf[1] = 'x';
  buf[2] = hex[u >> 4];
  buf[3] = hex[u & 15];
  buf[4] = '\0';
  return std::string("byte ") + buf;
}

class Parser {
 public:
  explicit Parser(std::string_view text) : s_(text) {}

  Value document() {
    skip_space();
    Value v = value(0);
    skip_space();
    if (pos_ != s_.size()) error("unexpected " + show(s_[pos_]) + " after the JSON value");
    return v;
  }

 private:
  unsigned column() const { return static_cast<unsigned>(pos_ - line_start_ + 1); }
  [[noreturn]] void error(const std::string& what) const { fail(line_, column(), what); }
  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return s_[pos_]; }

  void skip_space() {
    while (!at_end()) {
      char c = peek();
      if (c == '\n') {
        ++pos_;
        ++line_;
        line_start_ = pos_;
      } else if (c == ' ' || c == '\t' || c == '\r') {
        ++pos_;
      } else {
        break;
      }
    }
  }

  void expect_literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) error("invalid literal (expected " + std::string(word) + ")");
    pos_ += word.size();
  }

  Value value(unsigned depth) {
    if (at_end()) error("unexpected end of input (expected a value)");
    Value v;
    v.line = line_;
    v.column = column();
    char c = peek();
    switch (c) {
      case '{': object(v, depth); break;
      case '[': array(v, depth); break;
      case '"':
        v.type = Value::Type::string;
        v.text = string();
        break;
      case 't':
        expect_literal("true");
        v.type = Value::Type::boolean;
        v.boolean = true;
        break;
      case 'f':
        expect_literal("false");
        v.type = Value::Type::boolean;
        break;
      case 'n':
        expect_literal("null");
        break;
      default:
        if (c == '-' || (c >= '0' && c <= '9')) {
          v.type = Value::Type::number;
          v.text = number();
        } else {
          error("unexpected " + show(c) + " (expected a value)");
        }
    }
    return v;
  }

  void enter(unsigned depth) {
    if (depth + 1 > kMaxDepth) error("nesting deeper than " + std::to_string(kMaxDepth) + " levels");
  }

  void object(Value& v, unsigned depth) {
    enter(depth);
    v.type = Value::Type::object;
    ++pos_;  // '{'
    skip_space();
    if (!at_end() && peek() == '}') {
      ++pos_;
      return;
    }
    for (;;) {
      skip_space();
      if (at_end()) error("unexpected end of input in an object (expected a member name)");
      if (peek() != '"') error("unexpected " + show(peek()) + " (expected a member name)");
      v.keys.push_back(string());
      skip_space();
      if (at_end() || peek() != ':')
        error(at_end() ? "unexpected end of input (expected ':')"
                       : "unexpected " + show(peek()) + " (expected ':')");
      ++pos_;
      skip_space();
      v.items.push_back(value(depth + 1));
      skip_space();
      if (at_end()) error("unexpected end of input in an object (expected ',' or '}')");
      char c = peek();
      ++pos_;
      if (c == '}') return;
      if (c != ',') {
        --pos_;
        error("unexpected " + show(c) + " in an object (expected ',' or '}')");
      }
    }
  }

  void array(Value& v, unsigned depth) {
    enter(depth);
    v.type = Value::Type::array;
    ++pos_;  // '['
    skip_space();
    if (!at_end() && peek() == ']') {
      ++pos_;
      return;
    }
    for (;;) {
      skip_space();
      v.items.push_back(value(depth + 1));
      skip_space();
      if (at_end()) error("unexpected end of input in an array (expected ',' or ']')");
      char c = peek();
      ++pos_;
      if (c == ']') return;
      if (c != ',') {
        --pos_;
        error("unexpected " + show(c) + " in an array (expected ',' or ']')");
      }
    }
  }

  unsigned hex4() {
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      if (at_end()) error("unexpected end of input in a \\u escape");
      char c = peek();
      unsigned d;
      if (c >= '0' && c <= '9') d = static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') d = static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') d = static_cast<unsigned>(c - 'A' + 10);
      else error("unexpected " + show(c) + " in a \\u escape (expected a hex digit)");
      v = v * 16 + d;
      ++pos_;
    }
    return v;
  }

  static void put_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }

  std::string string() {
    ++pos_;  // '"'
    std::string out;
    for (;;) {
      if (at_end()) error("unexpected end of input in a string");
      char c = peek();
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (static_cast<unsigned char>(c) < 0x20) error("control character " + show(c) + " in a string");
      if (c != '\\') {
        out += c;
        ++pos_;
        continue;
      }
      ++pos_;
      if (at_end()) error("unexpected end of input in a string escape");
      char e = peek();
      ++pos_;
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xdc00 && cp <= 0xdfff) error("unpaired low surrogate in a \\u escape");
          if (cp >= 0xd800 && cp <= 0xdbff) {
            if (s_.substr(pos_, 2) != "\\u") error("unpaired high surrogate in a \\u escape");
            pos_ += 2;
            unsigned lo = hex4();
            if (lo < 0xdc00 || lo > 0xdfff) error("unpaired high surrogate in a \\u escape");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          }
          put_utf8(out, cp);
          break;
        }
        default:
          --pos_;
          error("invalid escape \\" + std::string(1, e));
      }
    }
  }

  bool digit() const { return !at_end() && peek() >= '0' && peek() <= '9'; }

  std::string number() {
    std::size_t start = pos_;
    if (peek() == '-') ++pos_;
    if (!digit()) error("invalid number (expected a digit)");
    if (peek() == '0') {
      ++pos_;
      if (digit()) error("invalid number (leading zero)");
    } else {
      while (digit()) ++pos_;
    }
    if (!at_end() && peek() == '.') {
      ++pos_;
      if (!digit()) error("invalid number (expected a digit after '.')");
      while (digit()) ++pos_;
    }
    if (!at_end() && (peek() == 'e' || peek() == 'E')) {
      ++pos_;
      if (!at_end() && (peek() == '+' || peek() == '-')) ++pos_;
      if (!digit()) error("invalid number (expected a digit in the exponent)");
      while (digit()) ++pos_;
    }
    return std::string(s_.substr(start, pos_ - start));
  }

  std::string_view s_;
  std::size_t pos_ = 0;
  unsigned line_ = 1;
  std::size_t line_start_ = 0;
};

}  // namespace

[[noreturn]] void fail_at(const Value& where, const std::string& what) {
  fail(where.line, where.column, what);
}

const Value* Value::find(std::string_view key) const {
  if (type != Type::object) return nullptr;
  for (std::size_t i = 0; i < keys.size(); ++i)
    if (keys[i] == key) return &items[i];
  return nullptr;
}

double Value::as_double() const {
  if (type != Type::number) fail_at(*this, "expected a number");
  double v = 0;
  auto r = std::from_chars(text.data(), text.data() + text.size(), v);
  if (r.ec != std::errc() || !std::isfinite(v)) fail_at(*this, "number out of range: " + text);
  return v;
}

std::uint64_t Value::as_u64() const {
  if (type != Type::number) fail_at(*this, "expected a number");
  std::uint64_t v = 0;
  auto r = std::from_chars(text.data(), text.data() + text.size(), v);
  if (r.ec != std::errc() || r.ptr != text.data() + text.size())
    fail_at(*this, "expected a non-negative integer below 2^64, got " + text);
  return v;
}

std::int64_t Value::as_i64() const {
  if (type != Type::number) fail_at(*this, "expected a number");
  std::int64_t v = 0;
  auto r = std::from_chars(text.data(), text.data() + text.size(), v);
  if (r.ec != std::errc() || r.ptr != text.data() + text.size())
    fail_at(*this, "expected a 64-bit integer, got " + text);
  return v;
}

Value parse(std::string_view text) { return Parser(text).document(); }

}  // namespace hetmm::telemetry::json
