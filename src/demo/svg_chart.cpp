// SVG charts (svg_chart.hpp): fixed 720 × 360 canvas, linear axes with "nice" ticks.
#include "fusellm/demo/svg_chart.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

namespace fusellm::demo {

namespace {

constexpr double kWidth = 720, kHeight = 360, kLeft = 64, kRight = 180, kTop = 36, kBottom = 48;

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}

// Tick step of 1, 2 or 5 × 10^k giving about `count` ticks over [lo, hi].
double nice_step(double lo, double hi, int count) {
  const double raw = std::max((hi - lo) / count, 1e-12);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * mag) return m * mag;
  return 10 * mag;
}

struct Frame {
  double x0, x1, y0, y1;
  double px(double x) const { return kLeft + (x - x0) / (x1 - x0) * (kWidth - kLeft - kRight); }
  double py(double y) const { return kHeight - kBottom - (y - y0) / (y1 - y0) * (kHeight - kTop - kBottom); }
};

std::string header(const std::string& title) {
  return fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{3}</text>\n",
      kWidth, kHeight, kLeft, escape(title));
}

std::string y_axis(const Frame& f, const std::string& label) {
  std::string s;
  const double step = nice_step(f.y0, f.y1, 5);
  for (double y = std::ceil(f.y0 / step) * step; y <= f.y1 + step * 1e-9; y += step) {
    s += fmt::format("<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>\n", kLeft,
                     kWidth - kRight, f.py(y), f.py(y));
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{:g}</text>\n", kLeft - 6, f.py(y) + 4, y);
  }
  s += fmt::format("<text transform=\"translate(16,{:.1f}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
                   (kTop + kHeight - kBottom) / 2, escape(label));
  return s;
}

std::string legend_entry(size_t i, const std::string& name, const std::string& color, bool dashed, bool bar) {
  const double y = kTop + 14 + 18 * double(i), x = kWidth - kRight + 14;
  std::string mark = bar ? fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"18\" height=\"10\" fill=\"{}\"/>", x, y - 9, color)
                         : fmt::format("<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" "
                                       "stroke-width=\"2\"{}/>",
                                       x, x + 18, y - 4, y - 4, color, dashed ? " stroke-dasharray=\"5,3\"" : "");
  return mark + fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n", x + 24, y, escape(name));
}

}  // namespace

std::string svg_line_chart(const std::string& title, const std::string& x_label, const std::string& y_label,
                           const std::vector<Series>& series) {
  Frame f{std::numeric_limits<double>::max(), std::numeric_limits<double>::lowest(),
          std::numeric_limits<double>::max(), std::numeric_limits<double>::lowest()};
  for (const auto& s : series)
    for (const auto& [x, y] : s.points) {
      if (!std::isfinite(y)) continue;
      f.x0 = std::min(f.x0, x), f.x1 = std::max(f.x1, x), f.y0 = std::min(f.y0, y), f.y1 = std::max(f.y1, y);
    }
  if (f.x0 > f.x1) f = {0, 1, 0, 1};
  if (f.x1 == f.x0) f.x1 = f.x0 + 1;
  const double pad = std::max((f.y1 - f.y0) * 0.05, 1e-6);
  f.y0 -= pad, f.y1 += pad;
  std::string svg = header(title) + y_axis(f, y_label);
  const double xstep = nice_step(f.x0, f.x1, 6);
  for (double x = std::ceil(f.x0 / xstep) * xstep; x <= f.x1 + xstep * 1e-9; x += xstep)
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{:g}</text>\n", f.px(x),
                       kHeight - kBottom + 16, x);
  svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n",
                     (kLeft + kWidth - kRight) / 2, kHeight - 10, escape(x_label));
  size_t legend = 0;
  for (const auto& s : series) {
    std::string points;
    for (const auto& [x, y] : s.points)
      if (std::isfinite(y)) points += fmt::format("{:.1f},{:.1f} ", f.px(x), f.py(y));
    svg += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\"{} points=\"{}\"/>\n", s.color,
                       s.dashed ? " stroke-dasharray=\"5,3\"" : "", points);
    if (s.in_legend) svg += legend_entry(legend++, s.name, s.color, s.dashed, false);
  }
  return svg + "</svg>\n";
}

std::string svg_bar_chart(const std::string& title, const std::string& y_label, const std::vector<std::string>& bar_names,
                          const std::vector<std::string>& colors, const std::vector<BarGroup>& groups) {
  double hi = 0;
  for (const auto& g : groups)
    for (double v : g.values)
      if (std::isfinite(v)) hi = std::max(hi, v);
  Frame f{0, double(std::max<size_t>(groups.size(), 1)), 0, hi > 0 ? hi * 1.08 : 1};
  std::string svg = header(title) + y_axis(f, y_label);
  const double group_w = (kWidth - kLeft - kRight) / f.x1, bar_w = group_w * 0.8 / double(std::max<size_t>(bar_names.size(), 1));
  for (size_t g = 0; g < groups.size(); ++g) {
    for (size_t b = 0; b < groups[g].values.size() && b < bar_names.size(); ++b) {
      const double v = groups[g].values[b];
      if (!std::isfinite(v)) continue;
      const double x = kLeft + group_w * (double(g) + 0.1) + bar_w * double(b);
      svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"><title>{}: {:.4f}</title></rect>\n",
                         x, f.py(v), bar_w * 0.92, f.py(0) - f.py(v), colors[b % colors.size()], escape(bar_names[b]), v);
    }
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n",
                       kLeft + group_w * (double(g) + 0.5), kHeight - kBottom + 16, escape(groups[g].label));
  }
  for (size_t b = 0; b < bar_names.size(); ++b) svg += legend_entry(b, bar_names[b], colors[b % colors.size()], false, true);
  return svg + "</svg>\n";
}

}  // namespace fusellm::demo
