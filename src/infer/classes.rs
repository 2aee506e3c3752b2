//! Which class each image of a request is drawn as, for a class-conditional model.
//!
//! A request names one class for all its images, one class per image, or none: then image i of
//! seed s is of class `Stream::new(s, SAMPLE_CLASS).below(i, classes)`, uniform over the classes
//! and, like its latent, a function of (seed, i) alone. So image i of a request depends only on
//! (weights, seed, i, its class), never on the other images' classes or on the batch.

use crate::error::{Error, Result};
use crate::rng::{stream, Stream};

/// The classes of a request's images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classes<'a> {
    /// None named: drawn uniformly from (seed, i) for a conditional model; an unconditional
    /// model draws no class.
    Drawn,
    /// Every image of this class.
    All(u32),
    /// Image i of class `[i]` (one per image).
    Each(&'a [u32]),
}

impl Classes<'_> {
    /// `InvalidArgument` unless these classes fit a model of `classes` classes (0:
    /// unconditional, which takes no class) for a request of `count` images: a class within
    /// range, and one per image for `Each`.
    pub(crate) fn check(&self, classes: u32, count: usize) -> Result<()> {
        if classes == 0 {
            return match self {
                Classes::Drawn => Ok(()),
                _ => Err(Error::invalid(
                    "this model is unconditional (its configuration has classes 0): it draws no class",
                )),
            };
        }
        let bad = |i: Option<usize>, k: u32| {
            let which = i.map_or(String::new(), |i| format!(" of image {i}"));
            Error::invalid(format!("class {k}{which} is out of range: this model has {classes} classes (0..={})", classes - 1))
        };
        match *self {
            Classes::Drawn => Ok(()),
            Classes::All(k) if k >= classes => Err(bad(None, k)),
            Classes::All(_) => Ok(()),
            Classes::Each(list) if list.len() != count => Err(Error::invalid(format!(
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
    /// (checked by [`Classes::check`] for a model of `classes` > 0 classes).
    pub(crate) fn fill(&self, classes: u32, seed: u64, first: usize, out: &mut [i64]) {
        match *self {
            Classes::Drawn => {
                let s = Stream::new(seed, stream::SAMPLE_CLASS);
                for (i, v) in out.iter_mut().enumerate() {
                    *v = s.below((first + i) as u64, u64::from(classes)) as i64;
                }
            }
            Classes::All(k) => out.fill(i64::from(k)),
            Classes::Each(list) => {
                for (v, &k) in out.iter_mut().zip(&list[first..]) {
                    *v = i64::from(k);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawn_classes_are_uniform_and_a_function_of_seed_and_index() {
        let mut a = vec![0i64; 10_000];
        Classes::Drawn.fill(10, 3, 0, &mut a);
        let mut tail = vec![0i64; 100];
        Classes::Drawn.fill(10, 3, 500, &mut tail);
        assert_eq!(tail, a[500..600]);
        for k in 0..10 {
            let n = a.iter().filter(|&&v| v == k).count();
            assert!((900..1100).contains(&n), "class {k}: {n} of 10,000");
        }
        let mut other = vec![0i64; 100];
        Classes::Drawn.fill(10, 4, 0, &mut other);
        assert_ne!(other, a[..100]);
    }

    #[test]
    fn classes_are_checked_against_the_model() {
        assert!(Classes::Drawn.check(0, 5).is_ok());
        assert!(Classes::All(0).check(0, 5).unwrap_err().message.contains("unconditional"));
        assert!(Classes::All(9).check(10, 5).is_ok());
        assert!(Classes::All(10).check(10, 5).unwrap_err().message.contains("class 10 is out of range"));
        let e = Classes::Each(&[1, 2, 12]).check(10, 3).unwrap_err();
        assert!(e.message.contains("class 12 of image 2"), "{}", e.message);
        assert!(Classes::Each(&[1, 2]).check(10, 3).unwrap_err().message.contains("2 classes given for 3 images"));
        let mut out = [0i64; 2];
        Classes::Each(&[4, 5, 6]).fill(10, 0, 1, &mut out);
        assert_eq!(out, [5, 6]);
    }
}
