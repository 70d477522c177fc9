//go:build nocgo

package main

//go:noinline
func compute(x int) int { return x*2 + 1 }
