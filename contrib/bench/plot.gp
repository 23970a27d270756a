# SPDX-License-Identifier: BSD-2-Clause
# plot.gp - throughput and p99 latency against connections and pipeline
# depth, gopro vs Redis, from the data file report.py writes.
# usage: gnuplot -e "datafile='report.dat'; outfile='report.png'" plot.gp
#
# Columns: conns, then (req/s, p99 us) for gopro HEARTBEAT P=1, P=32,
# MESSAGE 64 B P=1, P=32, Redis PING P=1, P=32.
set terminal pngcairo size 1400,560 font "sans,10"
set output outfile
set multiplot layout 1,2 title "gopro (1 worker, CPU 0) vs Redis PING, load generator on CPU 1 (medians)"
set logscale x
set xtics ("1" 1, "50" 50, "1000" 1000)
set xrange [0.7:1500]
set xlabel "connections"
set grid
set key top left font ",9"
set style data linespoints

set title "throughput"
set ylabel "requests/s"
set logscale y
set format y "%.0s%c"
plot datafile using 1:2 title "gopro HEARTBEAT P=1" lw 2 pt 7 lc rgb "#1f77b4", \
     '' using 1:4 title "gopro HEARTBEAT P=32" lw 2 pt 5 lc rgb "#1f77b4" dt 2, \
     '' using 1:6 title "gopro MESSAGE 64 B P=1" lw 2 pt 7 lc rgb "#2ca02c", \
     '' using 1:8 title "gopro MESSAGE 64 B P=32" lw 2 pt 5 lc rgb "#2ca02c" dt 2, \
     '' using 1:10 title "Redis PING P=1" lw 2 pt 7 lc rgb "#d62728", \
     '' using 1:12 title "Redis PING P=32" lw 2 pt 5 lc rgb "#d62728" dt 2

set title "p99 latency"
set ylabel "p99 (microseconds)"
set format y "%g"
plot datafile using 1:3 title "gopro HEARTBEAT P=1" lw 2 pt 7 lc rgb "#1f77b4", \
     '' using 1:5 title "gopro HEARTBEAT P=32" lw 2 pt 5 lc rgb "#1f77b4" dt 2, \
     '' using 1:7 title "gopro MESSAGE 64 B P=1" lw 2 pt 7 lc rgb "#2ca02c", \
     '' using 1:9 title "gopro MESSAGE 64 B P=32" lw 2 pt 5 lc rgb "#2ca02c" dt 2, \
     '' using 1:11 title "Redis PING P=1" lw 2 pt 7 lc rgb "#d62728", \
     '' using 1:13 title "Redis PING P=32" lw 2 pt 5 lc rgb "#d62728" dt 2
unset multiplot
