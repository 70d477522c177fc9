// A Go program for the e2e tests (go_program.sh), built with cgo or without
// (-tags nocgo). It speaks the serve.h protocol: "ready PID", then one answer
// per line ("call": compute(5)). Goroutines keep calling compute().
package main

import (
	"bufio"
	"fmt"
	"os"
	"time"
)

func main() {
	for i := 0; i < 4; i++ {
		go func() {
			for {
				compute(3)
				time.Sleep(time.Millisecond)
			}
		}()
	}
	fmt.Printf("ready %d\n", os.Getpid())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() == "call" {
			fmt.Println(compute(5))
		} else {
			fmt.Println("unknown command")
		}
	}
}
