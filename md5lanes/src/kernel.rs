//! MD5's compression function over up to sixteen independent messages at
//! once, one per 32-bit lane of the AVX-512 registers. MD5 is a chain of
//! 64 dependent steps per block, so one message leaves most of a core idle
//! waiting on latency; sixteen chains in one register cost about what one
//! costs. Lanes may have different numbers of blocks: a lane that has run
//! out keeps its state (masked add) and reads a block of zeros.

use std::arch::x86_64::*;

/// MD5's 64 steps: the round function, the step, the message word and the
/// rotation (round 1 takes word i, round 2 5i + 1, round 3 3i + 5, round 4
/// 7i, mod 16; RFC 1321), the four registers turning by one each step. Each
/// kernel passes its own `step` macro, registers and round functions.
macro_rules! schedule {
    (@four $step:ident, $a:ident, $b:ident, $c:ident, $d:ident, $f:tt, $i:expr,
     $g0:expr, $g1:expr, $g2:expr, $g3:expr, $s0:expr, $s1:expr, $s2:expr, $s3:expr) => {
        $step!($f, $a, $b, $c, $d, $g0, $s0, $i);
        $step!($f, $d, $a, $b, $c, $g1, $s1, $i + 1);
        $step!($f, $c, $d, $a, $b, $g2, $s2, $i + 2);
        $step!($f, $b, $c, $d, $a, $g3, $s3, $i + 3);
    };
    ($step:ident, $a:ident, $b:ident, $c:ident, $d:ident, $f:tt, $g:tt, $h:tt, $i:tt) => {
        schedule!(@four $step, $a, $b, $c, $d, $f, 0, 0, 1, 2, 3, 7, 12, 17, 22);
        schedule!(@four $step, $a, $b, $c, $d, $f, 4, 4, 5, 6, 7, 7, 12, 17, 22);
        schedule!(@four $step, $a, $b, $c, $d, $f, 8, 8, 9, 10, 11, 7, 12, 17, 22);
        schedule!(@four $step, $a, $b, $c, $d, $f, 12, 12, 13, 14, 15, 7, 12, 17, 22);
        schedule!(@four $step, $a, $b, $c, $d, $g, 16, 1, 6, 11, 0, 5, 9, 14, 20);
        schedule!(@four $step, $a, $b, $c, $d, $g, 20, 5, 10, 15, 4, 5, 9, 14, 20);
        schedule!(@four $step, $a, $b, $c, $d, $g, 24, 9, 14, 3, 8, 5, 9, 14, 20);
        schedule!(@four $step, $a, $b, $c, $d, $g, 28, 13, 2, 7, 12, 5, 9, 14, 20);
        schedule!(@four $step, $a, $b, $c, $d, $h, 32, 5, 8, 11, 14, 4, 11, 16, 23);
        schedule!(@four $step, $a, $b, $c, $d, $h, 36, 1, 4, 7, 10, 4, 11, 16, 23);
        schedule!(@four $step, $a, $b, $c, $d, $h, 40, 13, 0, 3, 6, 4, 11, 16, 23);
        schedule!(@four $step, $a, $b, $c, $d, $h, 44, 9, 12, 15, 2, 4, 11, 16, 23);
        schedule!(@four $step, $a, $b, $c, $d, $i, 48, 0, 7, 14, 5, 6, 10, 15, 21);
        schedule!(@four $step, $a, $b, $c, $d, $i, 52, 12, 3, 10, 1, 6, 10, 15, 21);
        schedule!(@four $step, $a, $b, $c, $d, $i, 56, 8, 15, 6, 13, 6, 10, 15, 21);
        schedule!(@four $step, $a, $b, $c, $d, $i, 60, 4, 11, 2, 9, 6, 10, 15, 21);
    };
}

pub const LANES: usize = 16;
pub const BLOCK_BYTES: usize = 64;

/// Per-step additive constants: floor(|sin(i + 1)| * 2^32), RFC 1321.
pub(crate) const K: [u32; 64] = [
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
];

/// MD5's initial state (A, B, C, D).
pub const INITIAL_STATE: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];

/// Whether this CPU runs the kernel.
pub fn supported() -> bool {
    is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vl")
}

/// Runs MD5's compression over each lane's whole blocks: `states[l]` is
/// lane l's (A, B, C, D), `inputs[l]` its blocks in order, in segments of
/// whole blocks (a lane's pieces need not be contiguous; none for an idle
/// empty for an idle lane). Panics if `supported()` is false or an input is
/// not whole blocks: both are the caller's bugs, not data.
pub fn compress(states: &mut [[u32; 4]], inputs: &[&[&[u8]]]) {
    assert!(supported(), "md5lanes: the CPU has no AVX-512F and VL");
    assert!(states.len() == inputs.len() && inputs.len() <= LANES);
    assert!(inputs
        .iter()
        .flat_map(|i| i.iter())
        .all(|s| s.len() % BLOCK_BYTES == 0));
    // SAFETY: AVX-512F and VL are present (checked above); every lane
    // reads only within its own slice, as the kernels document. The
    // narrowest kernel that holds the lanes runs: its round is cheaper.
    unsafe {
        match inputs.len() {
            0..=4 => compress_x4(states, inputs),
            5..=8 => compress_x8(states, inputs),
            _ => compress_x16(states, inputs),
        }
    }
}

/// The ternary-logic immediates of MD5's round functions, with
/// (x, y, z) = (B, C, D) as the operands (a, b, c) of vpternlogd.
const F: i32 = 0xca; // (x & y) | (!x & z)
const G: i32 = 0xe4; // (x & z) | (y & !z)
const H: i32 = 0x96; // x ^ y ^ z
const I: i32 = 0x39; // y ^ (x | !z)

/// One lock-step kernel per register width: sixteen lanes in 512-bit
/// registers, eight in 256 and four in 128 (AVX-512VL gives the narrower
/// ones the same ternary logic, rotates and masked adds). A round costs
/// about its chain of 64 dependent steps whatever the width, plus loading
/// and transposing the blocks, which grows with it: with four uploads
/// hashing, a 16-lane round is three quarters idle lanes.
///
/// # Safety (of each generated function)
/// AVX-512F and AVX-512VL must be present, and every segment whole blocks:
/// each is read to its end and not beyond. At most `$lanes` inputs; lanes
/// past `inputs.len()` are idle.
macro_rules! lockstep_kernel {
    ($name:ident, $lanes:expr, $vector:ty, $mask:ty, $load:ident, $store:ident, $zero:ident,
     $add:ident, $set1:ident, $ternary:ident, $rotate:ident, $mask_add:ident, $transpose:ident) => {
        #[target_feature(enable = "avx512f,avx512vl")]
        unsafe fn $name(states: &mut [[u32; 4]], inputs: &[&[&[u8]]]) {
            const N: usize = $lanes;
            // Vectors per lane's 64-byte block.
            const PARTS: usize = 16 / N;
            let lanes = inputs.len();
            let mut blocks = [0usize; N];
            let (mut a, mut b, mut c, mut d) = ([0u32; N], [0u32; N], [0u32; N], [0u32; N]);
            for l in 0..lanes {
                blocks[l] = inputs[l].iter().map(|s| s.len()).sum::<usize>() / BLOCK_BYTES;
                [a[l], b[l], c[l], d[l]] = states[l];
            }
            let rounds = blocks.iter().copied().max().unwrap_or(0);
            let mut va = $load(a.as_ptr().cast());
            let mut vb = $load(b.as_ptr().cast());
            let mut vc = $load(c.as_ptr().cast());
            let mut vd = $load(d.as_ptr().cast());
            static IDLE: [u8; BLOCK_BYTES] = [0; BLOCK_BYTES];
            // Each lane's place: its segment, and the offset in it.
            let mut at = [(0usize, 0usize); N];
            for block in 0..rounds {
                let mut active: $mask = 0;
                for (l, n) in blocks.iter().enumerate() {
                    if *n > block {
                        active |= 1 << l;
                    }
                }
                // Each lane's block is loaded whole and the blocks are
                // transposed: vector w holds word w of every lane (gathers
                // cost twice this).
                let mut rows: [[$vector; N]; PARTS] = [[$zero(); N]; PARTS];
                for l in 0..N {
                    let block_at = match inputs.get(l).filter(|_| blocks[l] > block) {
                        None => IDLE.as_ptr(),
                        Some(segments) => {
                            let (mut segment, mut offset) = at[l];
                            while offset == segments[segment].len() {
                                (segment, offset) = (segment + 1, 0);
                            }
                            at[l] = (segment, offset + BLOCK_BYTES);
                            segments[segment].as_ptr().add(offset)
                        }
                    };
                    for (p, part) in rows.iter_mut().enumerate() {
                        part[l] = $load(block_at.add(p * 4 * N).cast());
                    }
                }
                let mut m = [$zero(); 16];
                for (p, part) in rows.iter().enumerate() {
                    m[p * N..(p + 1) * N].copy_from_slice(&$transpose(part));
                }
                let (sa, sb, sc, sd) = (va, vb, vc, vd);
                macro_rules! step {
                    ($f:expr, $a:ident, $b:ident, $c:ident, $d:ident, $g:expr, $s:expr, $i:expr) => {
                        // A, the word and the constant are known steps
                        // ahead; only the round function waits on the
                        // previous step.
                        let t = $add(
                            $add($a, $add(m[$g], $set1(K[$i] as i32))),
                            $ternary::<{ $f }>($b, $c, $d),
                        );
                        $a = $add($b, $rotate::<$s>(t));
                    };
                }
                schedule!(step, va, vb, vc, vd, F, G, H, I);
                va = $mask_add(sa, active, sa, va);
                vb = $mask_add(sb, active, sb, vb);
                vc = $mask_add(sc, active, sc, vc);
                vd = $mask_add(sd, active, sd, vd);
            }
            $store(a.as_mut_ptr().cast(), va);
            $store(b.as_mut_ptr().cast(), vb);
            $store(c.as_mut_ptr().cast(), vc);
            $store(d.as_mut_ptr().cast(), vd);
            for l in 0..lanes {
                states[l] = [a[l], b[l], c[l], d[l]];
            }
        }
    };
}

lockstep_kernel!(
    compress_x16,
    16,
    __m512i,
    __mmask16,
    _mm512_loadu_si512,
    _mm512_storeu_si512,
    _mm512_setzero_si512,
    _mm512_add_epi32,
    _mm512_set1_epi32,
    _mm512_ternarylogic_epi32,
    _mm512_rol_epi32,
    _mm512_mask_add_epi32,
    transpose16
);
lockstep_kernel!(
    compress_x8,
    8,
    __m256i,
    __mmask8,
    _mm256_loadu_si256,
    _mm256_storeu_si256,
    _mm256_setzero_si256,
    _mm256_add_epi32,
    _mm256_set1_epi32,
    _mm256_ternarylogic_epi32,
    _mm256_rol_epi32,
    _mm256_mask_add_epi32,
    transpose8
);
lockstep_kernel!(
    compress_x4,
    4,
    __m128i,
    __mmask8,
    _mm_loadu_si128,
    _mm_storeu_si128,
    _mm_setzero_si128,
    _mm_add_epi32,
    _mm_set1_epi32,
    _mm_ternarylogic_epi32,
    _mm_rol_epi32,
    _mm_mask_add_epi32,
    transpose4
);

/// A 16 x 16 transpose of 32-bit words: row l, word w to vector w, lane l.
#[target_feature(enable = "avx512f")]
fn transpose16(rows: &[__m512i; 16]) -> [__m512i; 16] {
    let r = rows;
    let mut t = [_mm512_setzero_si512(); 16];
    for k in 0..8 {
        t[2 * k] = _mm512_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
    }
    // u[4k + c], 128-bit lane j: word 4j + c of rows 4k..4k + 3.
    let mut u = [_mm512_setzero_si512(); 16];
    for k in 0..4 {
        u[4 * k] = _mm512_unpacklo_epi64(t[4 * k], t[4 * k + 2]);
        u[4 * k + 1] = _mm512_unpackhi_epi64(t[4 * k], t[4 * k + 2]);
        u[4 * k + 2] = _mm512_unpacklo_epi64(t[4 * k + 1], t[4 * k + 3]);
        u[4 * k + 3] = _mm512_unpackhi_epi64(t[4 * k + 1], t[4 * k + 3]);
    }
    let mut out = [_mm512_setzero_si512(); 16];
    for c in 0..4 {
        let x0 = _mm512_shuffle_i32x4::<0x44>(u[c], u[4 + c]);
        let x1 = _mm512_shuffle_i32x4::<0xee>(u[c], u[4 + c]);
        let y0 = _mm512_shuffle_i32x4::<0x44>(u[8 + c], u[12 + c]);
        let y1 = _mm512_shuffle_i32x4::<0xee>(u[8 + c], u[12 + c]);
        out[c] = _mm512_shuffle_i32x4::<0x88>(x0, y0);
        out[4 + c] = _mm512_shuffle_i32x4::<0xdd>(x0, y0);
        out[8 + c] = _mm512_shuffle_i32x4::<0x88>(x1, y1);
        out[12 + c] = _mm512_shuffle_i32x4::<0xdd>(x1, y1);
    }
    out
}

/// An 8 x 8 transpose of 32-bit words: row l, word w to vector w, lane l.
#[target_feature(enable = "avx2")]
fn transpose8(r: &[__m256i; 8]) -> [__m256i; 8] {
    // u[4k + c], 128-bit half j: word 4j + c of rows 4k..4k + 3.
    let mut u = [_mm256_setzero_si256(); 8];
    for k in 0..2 {
        let lo01 = _mm256_unpacklo_epi32(r[4 * k], r[4 * k + 1]);
        let hi01 = _mm256_unpackhi_epi32(r[4 * k], r[4 * k + 1]);
        let lo23 = _mm256_unpacklo_epi32(r[4 * k + 2], r[4 * k + 3]);
        let hi23 = _mm256_unpackhi_epi32(r[4 * k + 2], r[4 * k + 3]);
        u[4 * k] = _mm256_unpacklo_epi64(lo01, lo23);
        u[4 * k + 1] = _mm256_unpackhi_epi64(lo01, lo23);
        u[4 * k + 2] = _mm256_unpacklo_epi64(hi01, hi23);
        u[4 * k + 3] = _mm256_unpackhi_epi64(hi01, hi23);
    }
    let mut out = [_mm256_setzero_si256(); 8];
    for c in 0..4 {
        out[c] = _mm256_permute2x128_si256::<0x20>(u[c], u[4 + c]);
        out[4 + c] = _mm256_permute2x128_si256::<0x31>(u[c], u[4 + c]);
    }
    out
}

/// A 4 x 4 transpose of 32-bit words: row l, word w to vector w, lane l.
#[target_feature(enable = "sse2")]
fn transpose4(r: &[__m128i; 4]) -> [__m128i; 4] {
    let lo01 = _mm_unpacklo_epi32(r[0], r[1]);
    let hi01 = _mm_unpackhi_epi32(r[0], r[1]);
    let lo23 = _mm_unpacklo_epi32(r[2], r[3]);
    let hi23 = _mm_unpackhi_epi32(r[2], r[3]);
    [
        _mm_unpacklo_epi64(lo01, lo23),
        _mm_unpackhi_epi64(lo01, lo23),
        _mm_unpacklo_epi64(hi01, hi23),
        _mm_unpackhi_epi64(hi01, hi23),
    ]
}

/// MD5's compression of one message on general registers: a round with
/// one lane runs this instead, as the vector kernel's step costs about a
/// third more than a scalar step (md5rate: 441 against 593 MB/s).
pub fn compress_one(state: &mut [u32; 4], segments: &[&[u8]]) {
    for block in segments.iter().flat_map(|s| s.chunks_exact(BLOCK_BYTES)) {
        let mut m = [0u32; 16];
        for (word, bytes) in m.iter_mut().zip(block.chunks_exact(4)) {
            *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        let [mut a, mut b, mut c, mut d] = *state;
        macro_rules! step {
            ($f:expr, $a:ident, $b:ident, $c:ident, $d:ident, $g:expr, $s:expr, $i:expr) => {
                let f = $f($b, $c, $d);
                $a = $b.wrapping_add(
                    $a.wrapping_add(m[$g].wrapping_add(K[$i]))
                        .wrapping_add(f)
                        .rotate_left($s),
                );
            };
        }
        let f = |x: u32, y: u32, z: u32| (x & y) | (!x & z);
        let g = |x: u32, y: u32, z: u32| (x & z) | (y & !z);
        let h = |x: u32, y: u32, z: u32| x ^ y ^ z;
        let i = |x: u32, y: u32, z: u32| y ^ (x | !z);
        schedule!(step, a, b, c, d, f, g, h, i);
        for (s, v) in state.iter_mut().zip([a, b, c, d]) {
            *s = s.wrapping_add(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::Digest;
    use proptest::prelude::*;

    #[test]
    fn constants_are_rfc_1321s() {
        for (i, k) in K.iter().enumerate() {
            let expected = ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0).floor() as u32;
            assert_eq!(*k, expected, "K[{i}]");
        }
    }

    /// A message with MD5's padding, as whole blocks.
    fn padded(message: &[u8]) -> Vec<u8> {
        let mut out = message.to_vec();
        out.push(0x80);
        while out.len() % 64 != 56 {
            out.push(0);
        }
        out.extend_from_slice(&(message.len() as u64 * 8).to_le_bytes());
        out
    }

    fn digest(state: [u32; 4]) -> Vec<u8> {
        state.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    proptest! {
        /// Each lane, of any length, gives md-5's digest; lanes of
        /// different lengths do not disturb each other, whether hashed in
        /// one call or split over several at block boundaries.
        #[test]
        fn every_lane_matches_md5(
            lens in proptest::collection::vec(0usize..700, 1..=LANES),
            split_blocks in 0usize..8,
            seed in any::<u64>(),
        ) {
            prop_assume!(supported());
            let messages: Vec<Vec<u8>> = lens
                .iter()
                .enumerate()
                .map(|(l, n)| (0..*n).map(|i| (seed as usize + 31 * l + 7 * i) as u8 ^ (i >> 3) as u8).collect())
                .collect();
            let inputs: Vec<Vec<u8>> = messages.iter().map(|m| padded(m)).collect();
            let mut states = vec![INITIAL_STATE; inputs.len()];
            let cut: Vec<usize> = inputs.iter().map(|i| (split_blocks * 64).min(i.len())).collect();
            // The first call takes each lane in two segments (split at
            // a block boundary), the second in one.
            let first: Vec<[&[u8]; 2]> = inputs
                .iter()
                .zip(&cut)
                .map(|(i, c)| [&i[..*c / 128 * 64], &i[*c / 128 * 64..*c]])
                .collect();
            let first: Vec<&[&[u8]]> = first.iter().map(|f| &f[..]).collect();
            compress(&mut states, &first);
            let rest: Vec<[&[u8]; 1]> = inputs.iter().zip(&cut).map(|(i, c)| [&i[*c..]]).collect();
            let rest: Vec<&[&[u8]]> = rest.iter().map(|r| &r[..]).collect();
            compress(&mut states, &rest);
            for (l, m) in messages.iter().enumerate() {
                prop_assert_eq!(digest(states[l]), md5::Md5::digest(m).to_vec(), "lane {}", l);
            }
        }
    }

    #[test]
    fn the_one_lane_kernel_matches_md5() {
        for len in [0usize, 1, 55, 56, 64, 1000, 100_003] {
            let message: Vec<u8> = (0..len).map(|i| (i * 31 + i / 7) as u8).collect();
            let input = padded(&message);
            let mut state = INITIAL_STATE;
            let (head, tail) = input.split_at(input.len() / 128 * 64);
            compress_one(&mut state, &[head, tail]);
            assert_eq!(
                digest(state),
                md5::Md5::digest(&message).to_vec(),
                "length {len}"
            );
        }
    }

    #[test]
    fn idle_lanes_keep_their_state() {
        if !supported() {
            return;
        }
        let block = [7u8; 64];
        let mut states = [[1, 2, 3, 4], INITIAL_STATE, [5, 6, 7, 8]];
        compress(&mut states, &[&[], &[&block], &[&[]]]);
        assert_eq!(states[0], [1, 2, 3, 4]);
        assert_eq!(states[2], [5, 6, 7, 8]);
        assert_ne!(states[1], INITIAL_STATE);
    }
}
