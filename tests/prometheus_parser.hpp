#pragma once

// A strict parser of the Prometheus text exposition format (0.0.4), for the
// metrics suites: it refuses anything a scraper could misread.
//
// Checked: metric and label name grammar; label value escapes (only \\, \"
// and \n); Go-style float values (and NaN, +Inf, -Inf); an optional integer
// timestamp; `# HELP` (at most one per family) and `# TYPE` (exactly one per
// family, a known type) before the family's first sample; every sample
// belongs to a typed family (histograms: `_bucket` with `le`, `_sum`,
// `_count`); a family's lines form one group; no series twice; counters
// not negative; per histogram series: `le` increasing, cumulative counts
// not decreasing, a final `le="+Inf"` equal to `_count`, a `_sum`. Lines end
// in '\n', never "\r\n".

#include <cmath>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace weave::test {

struct prom_sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct prom_family {
  std::string name;
  std::string type;
  std::string help;
  std::vector<prom_sample> samples;
};

struct prom_exposition {
  std::vector<prom_family> families;

  const prom_family* family(const std::string& name) const {
    for (auto& f : families)
      if (f.name == name)
        return &f;
    return nullptr;
  }

  /// The value of the series `name{labels}`; NaN if absent.
  double value(const std::string& name,
               const std::map<std::string, std::string>& labels = {}) const {
    for (auto& f : families)
      for (auto& s : f.samples)
        if (s.name == name && s.labels == labels)
          return s.value;
    return std::nan("");
  }
};

namespace prom_detail {

inline bool name_start(char c, bool colon) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'
         || (colon && c == ':');
}

inline bool name_char(char c, bool colon) {
  return name_start(c, colon) || (c >= '0' && c <= '9');
}

/// Reads a name at `pos`; "" if there is none.
inline std::string read_name(const std::string& s, size_t& pos, bool colon) {
  auto start = pos;
  if (pos >= s.size() || !name_start(s[pos], colon))
    return "";
  while (pos < s.size() && name_char(s[pos], colon))
    ++pos;
  return s.substr(start, pos - start);
}

inline bool valid_name(const std::string& s, bool colon) {
  size_t pos = 0;
  return !read_name(s, pos, colon).empty() && pos == s.size();
}

/// Parses a float the way Prometheus (Go's ParseFloat) accepts it.
inline bool parse_value(const std::string& s, double& out) {
  if (s == "NaN") {
    out = std::nan("");
    return true;
  }
  if (s == "+Inf" || s == "Inf") {
    out = HUGE_VAL;
    return true;
  }
  if (s == "-Inf") {
    out = -HUGE_VAL;
    return true;
  }
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-'))
    ++i;
  size_t digits = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])))
    ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])))
      ++i, ++digits;
  }
  if (digits == 0)
    return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-'))
      ++i;
    size_t exp = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])))
      ++i, ++exp;
    if (exp == 0)
      return false;
  }
  if (i != s.size())
    return false;
  out = std::strtod(s.c_str(), nullptr);
  return true;
}

inline std::string suffix_base(const std::string& name, const char* suffix) {
  std::string suf{suffix};
  if (name.size() > suf.size()
      && name.compare(name.size() - suf.size(), suf.size(), suf) == 0)
    return name.substr(0, name.size() - suf.size());
  return "";
}

} // namespace prom_detail

/// Parses `text` into `out`; returns "" or what is wrong (with the line).
inline std::string parse_prometheus(const std::string& text,
                                    prom_exposition& out) {
  using namespace prom_detail;
  out = {};
  if (!text.empty() && text.back() != '\n')
    return "the text does not end with a newline";
  std::map<std::string, size_t> index; // family name -> out.families
  std::set<std::string> closed;        // families whose group has ended
  std::set<std::string> with_samples;
  std::set<std::string> series;
  std::string current;
  auto family_at = [&](const std::string& name) -> prom_family& {
    auto i = index.find(name);
    if (i == index.end()) {
      index.emplace(name, out.families.size());
      out.families.push_back(prom_family{name, "", "", {}});
      return out.families.back();
    }
    return out.families[i->second];
  };
  // Enters `name`'s group; false if its group had ended before.
  auto enter = [&](const std::string& name) {
    if (name == current)
      return true;
    if (closed.count(name) != 0)
      return false;
    if (!current.empty())
      closed.insert(current);
    current = name;
    return true;
  };
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    auto end = text.find('\n', pos);
    auto line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    auto where = " (line " + std::to_string(line_no) + ": '" + line + "')";
    if (line.find('\r') != std::string::npos)
      return "carriage return" + where;
    if (line.empty())
      continue;
    if (line[0] == '#') {
      bool help = line.rfind("# HELP ", 0) == 0;
      bool type = line.rfind("# TYPE ", 0) == 0;
      if (!help && !type)
        continue; // a comment
      size_t p = 7;
      auto name = read_name(line, p, true);
      if (name.empty() || p >= line.size() || line[p] != ' ')
        return "bad metric name in HELP/TYPE" + where;
      auto rest = line.substr(p + 1);
      if (!enter(name))
        return "HELP/TYPE of a family whose group had ended" + where;
      if (with_samples.count(name) != 0)
        return "HELP/TYPE after the family's samples" + where;
      auto& f = family_at(name);
      if (help) {
        if (!f.help.empty())
          return "second HELP for a family" + where;
        for (size_t i = 0; i < rest.size(); ++i)
          if (rest[i] == '\\'
              && (i + 1 >= rest.size()
                  || (rest[i + 1] != '\\' && rest[i + 1] != 'n')))
            return "bad escape in HELP" + where;
          else if (rest[i] == '\\')
            ++i;
        f.help = rest.empty() ? " " : rest;
      } else {
        if (!f.type.empty())
          return "second TYPE for a family" + where;
        static const std::set<std::string> types{"counter", "gauge",
                                                 "histogram", "summary",
                                                 "untyped"};
        if (types.count(rest) == 0)
          return "unknown TYPE" + where;
        f.type = rest;
      }
      continue;
    }
    prom_sample s;
    size_t p = 0;
    s.name = read_name(line, p, true);
    if (s.name.empty())
      return "bad metric name" + where;
    if (p < line.size() && line[p] == '{') {
      ++p;
      for (;;) {
        if (p < line.size() && line[p] == '}') {
          ++p;
          break;
        }
        auto key = read_name(line, p, false);
        if (key.empty() || key.rfind("__", 0) == 0)
          return "bad label name" + where;
        if (p + 1 >= line.size() || line[p] != '=' || line[p + 1] != '"')
          return "label without =\"" + where;
        p += 2;
        std::string value;
        for (;;) {
          if (p >= line.size())
            return "unterminated label value" + where;
          auto c = line[p++];
          if (c == '"')
            break;
          if (c == '\\') {
            if (p >= line.size())
              return "bad escape in label value" + where;
            auto e = line[p++];
            if (e == '\\' || e == '"')
              value += e;
            else if (e == 'n')
              value += '\n';
            else
              return "bad escape in label value" + where;
          } else {
            value += c;
          }
        }
        if (!s.labels.emplace(key, value).second)
          return "label given twice" + where;
        if (p < line.size() && line[p] == ',') {
          ++p;
          continue;
        }
        if (p < line.size() && line[p] == '}') {
          ++p;
          break;
        }
        return "expected , or } after a label" + where;
      }
    }
    if (p >= line.size() || line[p] != ' ')
      return "no space before the value" + where;
    while (p < line.size() && line[p] == ' ')
      ++p;
    auto value_end = line.find(' ', p);
    auto value_text = line.substr(p, value_end - p);
    if (!parse_value(value_text, s.value))
      return "bad value" + where;
    if (value_end != std::string::npos) {
      auto ts = line.substr(value_end + 1);
      size_t i = ts.size() > 0 && ts[0] == '-' ? 1 : 0;
      if (i == ts.size())
        return "bad timestamp" + where;
      for (; i < ts.size(); ++i)
        if (!std::isdigit(static_cast<unsigned char>(ts[i])))
          return "bad timestamp" + where;
    }
    // Which family: the name itself, or a histogram's / summary's base.
    std::string fam;
    if (index.count(s.name) != 0
        && out.families[index[s.name]].type != "histogram"
        && out.families[index[s.name]].type != "summary")
      fam = s.name;
    for (auto suf : {"_bucket", "_sum", "_count"}) {
      auto base = suffix_base(s.name, suf);
      if (fam.empty() && !base.empty() && index.count(base) != 0) {
        auto& t = out.families[index[base]].type;
        if (t == "histogram" || (t == "summary" && std::string{suf} != "_bucket"))
          fam = base;
      }
    }
    if (fam.empty() || out.families[index[fam]].type.empty())
      return "sample without a TYPE" + where;
    if (!enter(fam))
      return "sample of a family whose group had ended" + where;
    auto& f = out.families[index[fam]];
    if (f.type == "histogram") {
      bool bucket = s.name == fam + "_bucket";
      if (bucket != (s.labels.count("le") != 0))
        return "le missing on a bucket, or on something else" + where;
    }
    if (f.type == "counter" && !(s.value >= 0))
      return "negative or NaN counter" + where;
    std::string key = s.name;
    for (auto& [k, v] : s.labels)
      key += "\x1f" + k + "=" + v;
    if (!series.insert(key).second)
      return "series given twice" + where;
    with_samples.insert(fam);
    f.samples.push_back(std::move(s));
  }
  // Histograms: per series (labels without le), check the buckets.
  for (auto& f : out.families) {
    if (f.type != "histogram")
      continue;
    struct hist {
      std::vector<std::pair<double, double>> buckets;
      bool has_sum = false;
      bool has_count = false;
      double count = 0;
    };
    std::map<std::map<std::string, std::string>, hist> hs;
    for (auto& s : f.samples) {
      auto labels = s.labels;
      if (s.name == f.name + "_bucket") {
        double le = 0;
        if (!parse_value(labels["le"], le) || std::isnan(le))
          return "bad le '" + labels["le"] + "' in " + f.name;
        labels.erase("le");
        hs[labels].buckets.emplace_back(le, s.value);
      } else if (s.name == f.name + "_sum") {
        hs[labels].has_sum = true;
      } else {
        hs[labels].has_count = true;
        hs[labels].count = s.value;
      }
    }
    for (auto& [labels, h] : hs) {
      if (!h.has_sum || !h.has_count || h.buckets.empty())
        return "histogram " + f.name + " lacks _sum, _count or buckets";
      for (size_t i = 1; i < h.buckets.size(); ++i) {
        if (!(h.buckets[i].first > h.buckets[i - 1].first))
          return "histogram " + f.name + ": le not increasing";
        if (h.buckets[i].second < h.buckets[i - 1].second)
          return "histogram " + f.name + ": bucket counts decrease";
      }
      if (!std::isinf(h.buckets.back().first))
        return "histogram " + f.name + ": no +Inf bucket";
      if (h.buckets.back().second != h.count)
        return "histogram " + f.name + ": +Inf bucket differs from _count";
    }
  }
  for (auto& f : out.families)
    if (f.type.empty())
      return "family " + f.name + " has HELP but no TYPE";
  return "";
}

} // namespace weave::test
