fn main() { println!("imgsearch"); }
