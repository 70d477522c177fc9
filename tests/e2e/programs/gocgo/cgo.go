//go:build !nocgo

package main

/*
__attribute__((noinline)) int compute(int x) { volatile int k = 1; return x * 2 + k; }
*/
import "C"

func compute(x int) int { return int(C.compute(C.int(x))) }
