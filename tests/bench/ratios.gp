# ratios.gp — the ratios of one feox_bench run as an SVG chart (make bench runs it):
#   gnuplot -e "data='build/bench/ratios.tsv'; out='build/bench/ratios.svg'" tests/bench/ratios.gp
# Input: the file feox_bench --ratios writes (row, median, min, max, peer family, label): one line
# per comparison of feox with a peer; the median of per-repetition ratios, the bar their min-max.
if (!exists("data")) data = 'build/bench/ratios.tsv'
if (!exists("out")) out = 'build/bench/ratios.svg'
stats data using 1 nooutput
rows = STATS_records
set terminal svg size 1200, (rows * 15 + 160) noenhanced font "sans,10" background rgb "white"
set output out
set title "feox ns/op divided by the peer's (median of per-repetition ratios; bar: min-max)\nbelow 1 = feox faster; labels say where the durability differs"
set logscale x 2
set format x "%g"
set grid xtics
set xlabel "feox / peer (log scale)"
set yrange [-1:rows]
set ytics scale 0 font ",8" nomirror
set key outside top center horizontal maxrows 1
set arrow from 1, graph 0 to 1, graph 1 nohead lw 1.5 lc rgb "black"
names = "LMDB SQLite SQLite-table(SQL) RocksDB"
plot data using (1):1:ytic(6) with dots lc rgb "white" notitle, \
     for [f=1:4] data using ($5 == f ? $2 : 1/0):1:3:4 with xerrorbars pt 7 ps 0.6 lw 1.2 \
         lc f title word(names, f)
