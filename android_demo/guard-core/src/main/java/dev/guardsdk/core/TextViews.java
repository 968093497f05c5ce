package dev.guardsdk.core;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The text views of guard_sdk.views, computed the same way character for character: {@code normalized} (NFKC,
 * format characters dropped, the bundle's look-alike table, spelled-out words joined, leetspeak folded),
 * {@code decoded} (base64, hex, percent-encoding and ROT13 undone where they decode to readable text, then
 * normalized), {@code payload} (what was decoded, alone) and {@code sentences} (several texts: each sentence of a
 * prompt of two or more, {@link #sentences}). docs/bundle.md states the rules; the vectors of tests/test_android.py
 * hold both runtimes to them.
 */
public final class TextViews {
  private static final Map<Character, Character> LEET = new HashMap<>();
  /** The view names a bundle may declare. */
  public static final List<String> NAMES = Arrays.asList("normalized", "decoded", "payload", "sentences");
  /** The view of several texts ({@link #sentences}); the others are one text each ({@link #view}). */
  public static final String SENTENCES = "sentences";
  private static final Pattern SENTENCE_BREAK = Pattern.compile("(?<=[.!?:])[ \\t\\r\\n]+|[\\r\\n]+");
  private static final Pattern BLANK = Pattern.compile("[ \\t\\r\\n]*");
  private static final int MAX_SENTENCES = 32;
  /**
   * A quoted request inside other words: the quoted text (group 1) opens with a question word, a modal or a verb that
   * asks for content (guard_sdk.views.QUOTED_REQUEST; ASCII case folding, as Python's re.ASCII: spelled out
   * letter by letter, since Android's CASE_INSENSITIVE always folds the Unicode way, the Kelvin sign as a k).
   */
  static final Pattern QUOTED_REQUEST = Pattern.compile(
      "[\"\u201c\u201d]([ \\t]*(?:" + String.join("|", java.util.Arrays.stream((
          "how what what's which who whom whose why where when can could would will should tell explain describe give "
          + "list write show teach help provide make create draft generate find detail outline walk suggest design "
          + "plan compose").split(" ")).map(TextViews::asciiCaseless).toArray(String[]::new))
          + ")(?![A-Za-z])[^\"\u201c\u201d\\r\\n]*)[\"\u201c\u201d]");
  private static final int MIN_LEET_WORDS = 2;
  private static final int MIN_SPELLED_LETTERS = 4;
  private static final Pattern BASE64_RUN = Pattern.compile("[A-Za-z0-9+/]{16,}={0,2}");
  private static final Pattern HEX_RUN = Pattern.compile("(?:[0-9A-Fa-f]{2}){8,}");
  private static final Pattern PERCENT = Pattern.compile("%[0-9A-Fa-f]{2}");
  private static final int MIN_PERCENT_ESCAPES = 3;
  private static final Pattern SEGMENT = Pattern.compile("[^:;.!?\n\"]+");
  private static final Pattern WORD = Pattern.compile("[A-Za-z]+");
  private static final double READABLE_SHARE = 0.6;
  private static final Set<String> COMMON_WORDS = new HashSet<>(Arrays.asList((
      "the be to of and a in that have i it for not on with he as you do at this but his by from they we say her she "
      + "or an will my one all would there their what so up out if about who get which go me when make can like time no "
      + "just him know take people into year your good some could them see other than then now look only come its over "
      + "think also back after use two how our work first well way even new want because any these give day most us is "
      + "are was were has had been step").split(" ")));

  /**
   * The run of spaces and tabs (group 1) after a word of lower-case letters and before a capitalised common word of
   * two letters or more and a word that starts lower case: where a sentence starts without the mark before it.
   */
  private static final Pattern UNMARKED_BREAK;

  static {
    List<String> starters = new ArrayList<>();
    for (String word : COMMON_WORDS) {
      if (word.length() >= 2) {
        starters.add(Character.toUpperCase(word.charAt(0)) + word.substring(1));
      }
    }
    UNMARKED_BREAK =
        Pattern.compile("(?<![^ \\t])[a-z]+([ \\t]+)(?=(?:" + String.join("|", starters) + ")[ \\t]+[a-z])");
  }

  static {
    String from = "4@3105$7";
    String to = "aaeiosst";
    for (int i = 0; i < from.length(); i++) {
      LEET.put(from.charAt(i), to.charAt(i));
    }
  }

  private TextViews() {}

  /** The {@code normalized} view of {@code text} under the bundle's look-alike table {@code fold}. */
  public static String normalized(String text, Map<String, String> fold) {
    String nfkc = Normalizer.normalize(text, Normalizer.Form.NFKC);
    StringBuilder out = new StringBuilder(nfkc.length());
    for (int i = 0; i < nfkc.length(); ) {
      int cp = nfkc.codePointAt(i);
      i += Character.charCount(cp);
      if (Character.getType(cp) == Character.FORMAT) {
        continue;
      }
      String c = new String(Character.toChars(cp));
      out.append(fold.getOrDefault(c, c));
    }
    return foldLeet(joinSpelled(out.toString()));
  }

  /**
   * The sentences of {@code text} (split after ".", "!", "?" or ":" and whitespace, at line breaks, around a quoted
   * request and where a sentence starts without the end mark before it; blank ones dropped) where it has two or more,
   * else none; of more than 32, the first 16 and the last 16.
   */
  public static List<String> sentences(String text) {
    List<String> parts = new ArrayList<>();
    for (String part : SENTENCE_BREAK.split(text, -1)) {
      for (String quoted : quoted(part)) {
        for (String piece : unmarked(quoted)) {
          if (!BLANK.matcher(piece).matches()) {
            parts.add(piece);
          }
        }
      }
    }
    if (parts.size() < 2) {
      return new ArrayList<>();
    }
    if (parts.size() <= MAX_SENTENCES) {
      return parts;
    }
    List<String> kept = new ArrayList<>(parts.subList(0, MAX_SENTENCES / 2));
    kept.addAll(parts.subList(parts.size() - MAX_SENTENCES / 2, parts.size()));
    return kept;
  }

  /**
   * {@code part} cut at both ends of each {@code QUOTED_REQUEST}'s text, where a letter stands outside the quotes
   * (guard_sdk.views._quoted).
   */
  static List<String> quoted(String part) {
    List<String> pieces = cut(QUOTED_REQUEST, part, true);
    for (int i = 0; i < pieces.size(); i += 2) {
      if (pieces.get(i).codePoints().anyMatch(Character::isLetter)) {
        return pieces;
      }
    }
    return List.of(part);
  }

  /** {@code word} (ASCII letters and apostrophes) as a pattern matching either case of each letter, only. */
  private static String asciiCaseless(String word) {
    StringBuilder out = new StringBuilder();
    for (char c : word.toCharArray()) {
      out.append(Character.isLetter(c) ? "[" + Character.toLowerCase(c) + Character.toUpperCase(c) + "]" : c);
    }
    return out.toString();
  }

  /**
   * {@code part} split at each {@code UNMARKED_BREAK}, the spaces and tabs there dropped (guard_sdk.views._unmarked).
   */
  static List<String> unmarked(String part) {
    return cut(UNMARKED_BREAK, part, false);
  }

  /** {@code part} cut at both ends of each match's group 1, which is kept as a piece of its own or dropped. */
  private static List<String> cut(Pattern pattern, String part, boolean keep) {
    List<String> pieces = new ArrayList<>();
    Matcher match = pattern.matcher(part);
    int at = 0;
    while (match.find()) {
      pieces.add(part.substring(at, match.start(1)));
      if (keep) {
        pieces.add(match.group(1));
      }
      at = match.end(1);
    }
    pieces.add(part.substring(at));
    return pieces;
  }

  /** The view {@code name} (one of {@link #NAMES} but {@code sentences}) of {@code text}. */
  public static String view(String name, String text, Map<String, String> fold) {
    if (name.equals("normalized")) {
      return normalized(text, fold);
    }
    List<String> parts = new ArrayList<>();
    String plain = decode(text, parts);
    return normalized(name.equals("decoded") || parts.isEmpty() ? plain : String.join("\n", parts), fold);
  }

  /**
   * The views that would read {@code text} as a disguise written ("raw", "normalized"), and are not scored for it:
   * "raw" where the declared normalized view differs from it; else "raw" and "normalized" where the payload is
   * declared and {@link #encodedWhole}. Python: guard_sdk.views.views leaves them out.
   */
  public static Set<String> unread(String text, List<String> names, Map<String, String> fold) {
    Set<String> out = new HashSet<>();
    if (names.contains("normalized") && !normalized(text, fold).equals(text)) {
      out.add("raw");
    } else if (names.contains("payload") && encodedWhole(text, fold)) {
      out.add("raw");
      out.add("normalized");
    }
    return out;
  }

  /** Whether {@code text} is nothing but base64 or hex runs or percent-escapes (not ROT13); Python: encoded_whole. */
  public static boolean encodedWhole(String text, Map<String, String> fold) {
    List<String> parts = new ArrayList<>();
    String plain = decode(text, parts, false);
    return !parts.isEmpty() && normalized(String.join("\n", parts), fold).equals(normalized(plain, fold));
  }

  /** {@code text} decoded; what each base64 or hex run and ROT13 segment decoded to is added to {@code parts}. */
  static String decode(String text, List<String> parts) {
    return decode(text, parts, true);
  }

  /** As {@link #decode(String, List)}, ROT13 segments read only where {@code readRot13}. */
  static String decode(String text, List<String> parts, boolean readRot13) {
    text = replace(BASE64_RUN, text, run -> keep(readable(base64(run)), run, parts));
    text = replace(HEX_RUN, text, run -> keep(readable(hex(run)), run, parts));
    Matcher escapes = PERCENT.matcher(text);
    int count = 0;
    while (escapes.find()) {
      count++;
    }
    String unescaped = count >= MIN_PERCENT_ESCAPES ? percentDecoded(text) : text;
    boolean escaped = !unescaped.equals(text);
    text = readRot13 ? replace(SEGMENT, unescaped, segment -> keep(rot13(segment), segment, parts)) : unescaped;
    if (escaped) { // percent-encoding covers the whole text: the payload is all of it
      parts.clear();
      parts.add(stripSpaces(text));
    }
    return text;
  }

  private static String keep(String found, String run, List<String> parts) {
    if (found == null) {
      return run;
    }
    parts.add(stripSpaces(found));
    return found;
  }

  /** Python's {@code str.strip(" ")}: spaces alone, not every whitespace character. */
  private static String stripSpaces(String text) {
    int start = 0;
    int end = text.length();
    while (start < end && text.charAt(start) == ' ') {
      start++;
    }
    while (end > start && text.charAt(end - 1) == ' ') {
      end--;
    }
    return text.substring(start, end);
  }

  private static String replace(Pattern pattern, String text, Function<String, String> change) {
    Matcher m = pattern.matcher(text);
    StringBuilder out = new StringBuilder();
    int last = 0;
    while (m.find()) {
      out.append(text, last, m.start()).append(change.apply(m.group()));
      last = m.end();
    }
    return out.append(text.substring(last)).toString();
  }

  private static String joinSpelled(String text) {
    String[] tokens = text.split(" ", -1);
    StringBuilder out = new StringBuilder();
    int i = 0;
    boolean first = true;
    while (i < tokens.length) {
      if (!letter(tokens[i])) {
        first = append(out, tokens[i], first);
        i++;
        continue;
      }
      int j = i;
      int letters = 0;
      while (j < tokens.length
          && (letter(tokens[j]) || (tokens[j].isEmpty() && j + 1 < tokens.length && letter(tokens[j + 1])))) {
        letters += letter(tokens[j]) ? 1 : 0;
        j++;
      }
      if (letters >= MIN_SPELLED_LETTERS) {
        StringBuilder word = new StringBuilder();
        for (int k = i; k < j; k++) {
          word.append(tokens[k].isEmpty() ? " " : tokens[k]);
        }
        first = append(out, word.toString(), first);
      } else {
        for (int k = i; k < j; k++) {
          first = append(out, tokens[k], first);
        }
      }
      i = j;
    }
    return out.toString();
  }

  private static boolean append(StringBuilder out, String token, boolean first) {
    if (!first) {
      out.append(' ');
    }
    out.append(token);
    return false;
  }

  private static boolean letter(String token) {
    return token.length() == 1 && asciiLetter(token.charAt(0));
  }

  private static boolean asciiLetter(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  }

  private static String foldLeet(String text) {
    String[] words = text.split(" ", -1);
    int leetWords = 0;
    for (String word : words) {
      leetWords += letters(word) > 0 && leetDigits(word) && hasLeet(word) ? 1 : 0;
    }
    boolean leetText = leetWords >= MIN_LEET_WORDS;
    StringBuilder out = new StringBuilder();
    for (int w = 0; w < words.length; w++) {
      String word = words[w];
      if (w > 0) {
        out.append(' ');
      }
      if (leetDigits(word) && (leetText || letters(word) >= 2)) {
        for (int i = 0; i < word.length(); i++) {
          char c = word.charAt(i);
          out.append(LEET.getOrDefault(c, c));
        }
      } else {
        out.append(word);
      }
    }
    return out.toString();
  }

  private static int letters(String word) {
    int found = 0;
    for (int i = 0; i < word.length(); i++) {
      found += asciiLetter(word.charAt(i)) ? 1 : 0;
    }
    return found;
  }

  private static boolean leetDigits(String word) {
    for (int i = 0; i < word.length(); i++) {
      char c = word.charAt(i);
      if (c >= '0' && c <= '9' && !LEET.containsKey(c)) {
        return false;
      }
    }
    return true;
  }

  private static boolean hasLeet(String word) {
    for (int i = 0; i < word.length(); i++) {
      if (LEET.containsKey(word.charAt(i))) {
        return true;
      }
    }
    return false;
  }

  private static byte[] base64(String run) {
    String body = run.replaceAll("=+$", "");
    if (body.length() % 4 == 1) {
      return new byte[0];
    }
    StringBuilder padded = new StringBuilder(body);
    while (padded.length() % 4 != 0) {
      padded.append('=');
    }
    try {
      return Base64.getDecoder().decode(padded.toString());
    } catch (IllegalArgumentException e) {
      return new byte[0];
    }
  }

  private static byte[] hex(String run) {
    byte[] out = new byte[run.length() / 2];
    for (int i = 0; i < out.length; i++) {
      out[i] = (byte) Integer.parseInt(run.substring(2 * i, 2 * i + 2), 16);
    }
    return out;
  }

  /** UTF-8 text without control characters (tab and newlines aside), mostly ASCII letters and spaces; or null. */
  private static String readable(byte[] data) {
    String text = utf8(data);
    if (text == null || text.isEmpty()) {
      return null;
    }
    int chars = 0;
    int readable = 0;
    for (int i = 0; i < text.length(); ) {
      int cp = text.codePointAt(i);
      i += Character.charCount(cp);
      if ((cp < 32 && cp != '\t' && cp != '\n' && cp != '\r') || cp == 127) {
        return null;
      }
      chars++;
      readable += (cp == ' ' || (cp < 128 && asciiLetter((char) cp))) ? 1 : 0;
    }
    return readable >= READABLE_SHARE * chars ? text : null;
  }

  private static String utf8(byte[] data) {
    try {
      return StandardCharsets.UTF_8.newDecoder()
          .onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT)
          .decode(ByteBuffer.wrap(data))
          .toString();
    } catch (CharacterCodingException e) {
      return null;
    }
  }

  private static String percentDecoded(String text) {
    java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
    Matcher escape = PERCENT.matcher(text);
    for (int i = 0; i < text.length(); ) {
      if (escape.region(i, text.length()).lookingAt()) {
        out.write(Integer.parseInt(text.substring(i + 1, i + 3), 16));
        i += 3;
      } else {
        int cp = text.codePointAt(i);
        byte[] bytes = new String(Character.toChars(cp)).getBytes(StandardCharsets.UTF_8);
        out.write(bytes, 0, bytes.length);
        i += Character.charCount(cp);
      }
    }
    String decoded = utf8(out.toByteArray());
    return decoded != null ? decoded : text;
  }

  private static int commonWords(String text) {
    Matcher m = WORD.matcher(text);
    int found = 0;
    while (m.find()) {
      found += COMMON_WORDS.contains(m.group().toLowerCase(java.util.Locale.ROOT)) ? 1 : 0;
    }
    return found;
  }

  /** The ROT13 of a segment of two words or more that holds more common words than the segment, and at least a
   * quarter of its words; else null. */
  private static String rot13(String segment) {
    Matcher m = WORD.matcher(segment);
    int words = 0;
    while (m.find()) {
      words++;
    }
    if (words < 2) {
      return null;
    }
    StringBuilder turned = new StringBuilder(segment.length());
    for (int i = 0; i < segment.length(); i++) {
      char c = segment.charAt(i);
      if (c >= 'a' && c <= 'z') {
        c = (char) ('a' + (c - 'a' + 13) % 26);
      } else if (c >= 'A' && c <= 'Z') {
        c = (char) ('A' + (c - 'A' + 13) % 26);
      }
      turned.append(c);
    }
    int common = commonWords(turned.toString());
    return common > commonWords(segment) && 4 * common >= words ? turned.toString() : null;
  }
}
