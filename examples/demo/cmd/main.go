package main

import "fmt"

func greet(name string) string {
	// TODO: greet "world" when name is empty
	return fmt.Sprintf("hello %s", name)
}

func main() {
	fmt.Println(greet(""))
}
