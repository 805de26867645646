package render

import (
	"fmt"
	"image/color"
	"io"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// The size of one unit of Grafana's grid (24 columns wide), and the most
// legend entries drawn in one panel.
const (
	column     = 2.5 * vg.Centimeter
	row        = 1.3 * vg.Centimeter
	heading    = 1.6 * vg.Centimeter
	maxLegends = 8
)

// Draw writes the panels' results as one PNG, each panel where the
// dashboard places it, under the dashboard's title and subtitle.
func Draw(w io.Writer, d Dashboard, results []Result, subtitle string) error {
	rows := 0
	for _, r := range results {
		rows = max(rows, r.Panel.GridPos.Y+r.Panel.GridPos.H)
	}
	width, height := 24*column, vg.Length(rows)*row+heading
	img := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(96))
	c := draw.New(img)
	c.SetColor(color.White)
	c.Fill(c.Path())

	title := plot.DefaultFont
	title.Size = 20
	style := draw.TextStyle{Color: color.Black, Font: title, Handler: plot.DefaultTextHandler}
	c.FillText(style, vg.Point{X: 0.5 * vg.Centimeter, Y: height - 0.8*vg.Centimeter}, d.Title)
	style.Font.Size = 11
	c.FillText(style, vg.Point{X: 0.5 * vg.Centimeter, Y: height - 1.35*vg.Centimeter}, subtitle)

	for _, r := range results {
		p, err := panelPlot(r)
		if err != nil {
			return err
		}
		g := r.Panel.GridPos
		minX, maxX := vg.Length(g.X)*column, vg.Length(g.X+g.W)*column
		top := height - heading - vg.Length(g.Y)*row
		cell := draw.Canvas{Canvas: c.Canvas, Rectangle: vg.Rectangle{
			Min: vg.Point{X: minX + 0.2*vg.Centimeter, Y: top - vg.Length(g.H)*row + 0.2*vg.Centimeter},
			Max: vg.Point{X: maxX - 0.2*vg.Centimeter, Y: top - 0.2*vg.Centimeter},
		}}
		p.Draw(cell)
	}
	_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(w)
	return err
}

// panelPlot is one panel's plot: a line per series, a legend of the first
// few.
func panelPlot(r Result) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = r.Panel.Title
	p.Title.TextStyle.Font.Size = 13
	p.X.Label.Text = "seconds since the first scrape"
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.TextStyle.Font.Size = 9
	p.Add(plotter.NewGrid())
	p.X.Min, p.X.Max = 0, r.Seconds
	if len(r.Series) == 0 {
		p.Title.Text += " (no data in this run)"
		return p, nil
	}
	for i, s := range r.Series {
		xys := make(plotter.XYs, len(s.T))
		for j := range s.T {
			xys[j] = plotter.XY{X: s.T[j], Y: s.V[j]}
		}
		line, err := plotter.NewLine(xys)
		if err != nil {
			return nil, fmt.Errorf("panel %q, %s: %w", r.Panel.Title, s.Legend, err)
		}
		line.Color = plotutil.Color(i)
		line.Width = vg.Points(1.5)
		line.Dashes = plotutil.Dashes(i / 7)
		p.Add(line)
		switch {
		case i < maxLegends:
			p.Legend.Add(s.Legend, line)
		case i == maxLegends:
			p.Legend.Add(fmt.Sprintf("… %d more", len(r.Series)-maxLegends))
		}
	}
	p.X.Min, p.X.Max = 0, r.Seconds // the lines' own range is narrower
	p.Y.Min = min(p.Y.Min, 0)
	if p.Y.Max <= p.Y.Min {
		p.Y.Max = p.Y.Min + 1
	}
	p.Y.Max *= 1.35 // room for the legend
	return p, nil
}
