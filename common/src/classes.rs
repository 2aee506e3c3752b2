//! Which class each image of a request is drawn as, for a class-conditional model: one rule
//! for libgran and libgran_runtime, so both draw the same classes.
//!
//! A request names one class for all its images, one class per image, or none: then image i of
//! seed s is of class `Stream::new(s, SAMPLE_CLASS).below(i, classes)`, uniform over the classes
//! and, like its latent, a function of (seed, i) alone. So image i depends only on (weights,
//! seed or latents, i, its class): never on the count, the other images' classes or the chunks.

use crate::boundary::Failure;
use crate::rng::{stream, Stream};

type Result<T> = std::result::Result<T, Failure>;

fn invalid(message: impl Into<String>) -> Failure {
    Failure::invalid(message)
}

/// The classes of a request's images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classes<'a> {
    /// None named: drawn from (seed, i) for a conditional model (a seeded request only); an
    /// unconditional model draws no class.
    Drawn,
    /// Every image of this class.
    All(u32),
    /// Image i of class `[i]` (one per image).
    Each(&'a [u32]),
}

/// The class image `index` of `seed` is drawn as by a model of `classes` (> 0) classes when the
/// request names none.
pub fn drawn_class(seed: u64, index: u64, classes: u32) -> u32 {
    Stream::new(seed, stream::SAMPLE_CLASS).below(index, u64::from(classes)) as u32
}

impl Classes<'_> {
    /// INVALID_ARGUMENT unless these classes fit a model of `classes` classes (0: unconditional,
    /// which takes none) for a request of `count` images: each class in range (the message names
    /// the image), one per image for `Each`. `seeded`: whether the request has a seed to draw
    /// classes from (caller latents have none).
    pub fn check(&self, classes: u32, count: usize, seeded: bool) -> Result<()> {
        if classes == 0 {
            return match self {
                Classes::Drawn => Ok(()),
                _ => Err(invalid("this model is unconditional (its configuration has classes 0): it draws no class")),
            };
        }
        let bad = |i: Option<usize>, k: u32| {
            let which = i.map_or(String::new(), |i| format!(" of image {i}"));
            invalid(format!("class {k}{which} is out of range: this model has {classes} classes (0..={})", classes - 1))
        };
        match *self {
            Classes::Drawn if seeded => Ok(()),
            Classes::Drawn => {
                Err(invalid("this model is class-conditional: give a class for all the images or one per image"))
            }
            Classes::All(k) if k >= classes => Err(bad(None, k)),
            Classes::All(_) => Ok(()),
            Classes::Each(list) if list.len() != count => Err(invalid(format!(
                "{} classes given for {count} images: give one class for all of them or one per image",
                list.len()
            ))),
            Classes::Each(list) => match list.iter().position(|&k| k >= classes) {
                Some(i) => Err(bad(Some(i), list[i])),
                None => Ok(()),
            },
        }
    }

    /// The classes of images `first .. first + out.len()` of a request with latents of `seed`
    /// (unused unless `Drawn`), checked by [`Classes::check`] for a model of `classes` > 0.
    pub fn fill(&self, classes: u32, seed: u64, first: usize, out: &mut [u32]) {
        match *self {
            Classes::Drawn => {
                for (i, v) in out.iter_mut().enumerate() {
                    *v = drawn_class(seed, (first + i) as u64, classes);
                }
            }
            Classes::All(k) => out.fill(k),
            Classes::Each(list) => out.copy_from_slice(&list[first..first + out.len()]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawn_classes_are_uniform_and_a_function_of_seed_and_index() {
        let mut a = vec![0u32; 10_000];
        Classes::Drawn.fill(10, 3, 0, &mut a);
        let mut tail = vec![0u32; 100];
        Classes::Drawn.fill(10, 3, 500, &mut tail);
        assert_eq!(tail, a[500..600]);
        for k in 0..10 {
            let n = a.iter().filter(|&&v| v == k).count();
            assert!((900..1100).contains(&n), "class {k}: {n} of 10,000");
        }
        let mut other = vec![0u32; 100];
        Classes::Drawn.fill(10, 4, 0, &mut other);
        assert_ne!(other, a[..100]);
        assert_eq!(drawn_class(3, 7, 10), a[7]);
    }

    #[test]
    fn classes_are_checked_against_the_model() {
        assert!(Classes::Drawn.check(0, 5, false).is_ok());
        assert!(Classes::All(0).check(0, 5, true).unwrap_err().message.contains("unconditional"));
        assert!(Classes::Each(&[0]).check(0, 1, true).unwrap_err().message.contains("unconditional"));
        assert!(Classes::Drawn.check(10, 5, true).is_ok());
        assert!(Classes::Drawn.check(10, 5, false).unwrap_err().message.contains("class-conditional"));
        assert!(Classes::All(9).check(10, 5, false).is_ok());
        assert!(Classes::All(10).check(10, 5, true).unwrap_err().message.contains("class 10 is out of range"));
        let e = Classes::Each(&[1, 2, 12]).check(10, 3, true).unwrap_err();
        assert!(e.message.contains("class 12 of image 2"), "{}", e.message);
        let e = Classes::Each(&[1, 2]).check(10, 3, true).unwrap_err();
        assert!(e.message.contains("2 classes given for 3 images"), "{}", e.message);
        let mut out = [0u32; 2];
        Classes::Each(&[4, 5, 6]).fill(10, 0, 1, &mut out);
        assert_eq!(out, [5, 6]);
        Classes::All(7).fill(10, 0, 1, &mut out);
        assert_eq!(out, [7, 7]);
    }
}
