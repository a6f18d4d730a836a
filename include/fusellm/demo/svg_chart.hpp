#pragma once
// Small self-contained SVG charts for reports (no plotting library on a bare machine): line charts of
// training curves and grouped bar charts of per-domain scores.
#include <string>
#include <utility>
#include <vector>

namespace fusellm::demo {

struct Series {
  std::string name, color;
  std::vector<std::pair<double, double>> points;  // (x, y), x ascending
  bool dashed = false;
  bool in_legend = true;
};

std::string svg_line_chart(const std::string& title, const std::string& x_label, const std::string& y_label,
                           const std::vector<Series>& series);

struct BarGroup {
  std::string label;             // one group per category (a domain)
  std::vector<double> values;    // one bar per series, in the order of `bar_names`
};

std::string svg_bar_chart(const std::string& title, const std::string& y_label, const std::vector<std::string>& bar_names,
                          const std::vector<std::string>& colors, const std::vector<BarGroup>& groups);

}  // namespace fusellm::demo
