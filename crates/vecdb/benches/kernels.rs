//! Criterion benchmark of every available distance kernel set on common embedding dimensions.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vecdb::distance::Kernels;

fn bench_kernels(c: &mut Criterion) {
    for dim in [128usize, 784, 1280, 2048] {
        let a: Vec<f32> = (0..dim).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..dim).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut group = c.benchmark_group(format!("dim{dim}"));
        group.throughput(Throughput::Elements(dim as u64));
        for k in Kernels::available() {
            group.bench_with_input(BenchmarkId::new("l2_squared", k.name()), &k, |bench, k| {
                bench.iter(|| k.l2_squared(black_box(&a), black_box(&b)))
            });
            group.bench_with_input(BenchmarkId::new("dot", k.name()), &k, |bench, k| {
                bench.iter(|| k.dot(black_box(&a), black_box(&b)))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench_kernels);
criterion_main!(benches);
