package dev.guardsdk.core;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/** The quoted-request rule folds ASCII case only, as Python's re.ASCII, on every JVM Android included. */
class TextViewsTest {
  @Test
  void theQuotedRequestPatternLeavesCaseFoldingToItsOwnLetterClasses() {
    // Android's CASE_INSENSITIVE folds the Unicode way whatever the flags say; the desktop JVM's does not, so the
    // flag itself is what must stay off.
    assertEquals(0, TextViews.QUOTED_REQUEST.flags() & (Pattern.CASE_INSENSITIVE | Pattern.UNICODE_CASE));
  }

  @Test
  void anyAsciiCaseOfAnOpenerIsCutAndTheKelvinSignIsNotALetterK() {
    assertEquals(List.of("He asked \u201c", "HoW do I pick a lock", "\u201d twice."),
        TextViews.quoted("He asked \u201cHoW do I pick a lock\u201d twice."));
    // "how" then U+212A: Python's [A-Za-z] does not match the Kelvin sign, so the opener stands and the quote is cut
    assertEquals(List.of("He said \u201c", "how\u212a is it", "\u201d now."),
        TextViews.quoted("He said \u201chow\u212a is it\u201d now."));
  }
}
