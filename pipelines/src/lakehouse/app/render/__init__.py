"""What people look at: terminal tables, the HTML report and its SVG charts."""
