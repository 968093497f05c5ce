package dev.guardsdk.core;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * A prompt, or a prompt and a response, into windows of at most max_length tokens: the rule of docs/bundle.md
 * that the Python runtime's TextEncoder follows, step for step.
 */
public final class TextEncoder {
  /** The Python runtime's limit on one text (guard_sdk.guard.MAX_INPUT_CHARS), in code points. */
  public static final int MAX_INPUT_CHARS = 1_000_000;
  /** The Python runtime's limit on one input's windows (guard_sdk.guard.MAX_WINDOWS): refused, not scored. */
  public static final int MAX_WINDOWS = 256;

  private final WordPieceTokenizer tokenizer;
  private final Manifest manifest;
  private final boolean keepPromptEnd;
  private final boolean promptWindows;
  private final int overlap;
  public final int maxLength;
  public final int singleBudget;
  public final int pairBudget;

  public TextEncoder(WordPieceTokenizer tokenizer, Manifest manifest) throws GuardException {
    this.tokenizer = tokenizer;
    this.manifest = manifest;
    this.maxLength = manifest.maxLength;
    this.keepPromptEnd = manifest.promptTruncationSide.equals("left");
    this.promptWindows = manifest.promptWindows;
    this.overlap = manifest.windowOverlap;
    this.singleBudget = maxLength - tokenizer.single.specials;
    this.pairBudget = maxLength - tokenizer.pair.specials;
    Integer pad = tokenizer.tokenId(manifest.padToken);
    if (pad == null || pad != manifest.padId) {
      throw new GuardException(GuardException.Reason.MANIFEST, "text.pad_id " + manifest.padId
          + " is not the id of pad_token " + manifest.padToken + " in tokenizer.json (" + pad + ")");
    }
    if (overlap >= pairBudget / 2) {
      throw new GuardException(GuardException.Reason.MANIFEST,
          "window_overlap " + overlap + " must be under half of the " + pairBudget
              + " tokens a response window holds at max_length " + maxLength);
    }
  }

  /**
   * All windows of one input; {@code response} null for a prompt alone (an empty response is still a pair). An
   * input of more than MAX_WINDOWS windows is an INPUT refusal, before the model runs.
   */
  public List<Window> windows(String prompt, String response) throws GuardException {
    checkInput(prompt, response);
    List<Window> out = allWindows(prompt, response);
    if (out.size() > MAX_WINDOWS) {
      throw new GuardException(GuardException.Reason.INPUT, (response == null ? "the prompt" : "the response")
          + " needs " + out.size() + " windows of " + maxLength + " tokens; the limit is " + MAX_WINDOWS);
    }
    return out;
  }

  /** A window and the view of the text it was cut from ("raw", or one of TextViews.NAMES). */
  public static final class Viewed {
    public final String view;
    public final Window window;

    Viewed(String view, Window window) {
      this.view = view;
      this.window = window;
    }
  }

  /**
   * The windows the Python runtime's Guard.scored_windows gives: those of the text, then of each view the bundle
   * declares whose (prompt, response) differs from every earlier one, leaving out those that would read a disguise
   * as written ({@link TextViews#unread}), then (where the bundle declares them) each new sentence
   * of the prompt as read whose window holds it whole, alone or beside the response as read (its start); over
   * MAX_WINDOWS in all is an INPUT refusal.
   */
  public List<Viewed> scoredWindows(String prompt, String response) throws GuardException {
    checkInput(prompt, response);
    List<Viewed> out = new ArrayList<>();
    List<List<String>> seen = new ArrayList<>();
    Set<String> unread = TextViews.unread(prompt, manifest.views, manifest.fold);
    Set<String> promptUnread = new HashSet<>(unread);
    if (response != null) {
      unread.addAll(TextViews.unread(response, manifest.views, manifest.fold));
    }
    if (!unread.contains("raw")) {
      for (Window w : allWindows(prompt, response)) {
        out.add(new Viewed("raw", w));
      }
      seen.add(Arrays.asList(prompt, response));
    }
    for (String view : manifest.views) {
      if (view.equals(TextViews.SENTENCES) || unread.contains(view)) {
        continue;
      }
      String p = TextViews.view(view, prompt, manifest.fold);
      String r = response == null ? null : TextViews.view(view, response, manifest.fold);
      List<String> pair = Arrays.asList(p, r);
      if (!seen.contains(pair)) {
        seen.add(pair);
        for (Window w : allWindows(p, r)) {
          out.add(new Viewed(view, w));
        }
      }
    }
    if (manifest.views.contains(TextViews.SENTENCES)) {
      // each sentence of the prompt as read, alone or beside the response as read, where its window holds it whole
      String reply = response == null ? null
          : asRead(response, TextViews.unread(response, manifest.views, manifest.fold));
      List<String> parts = TextViews.sentences(asRead(prompt, promptUnread));
      int[] replyIds = reply == null || parts.isEmpty() ? null : tokenizer.encode(reply);
      for (String sentence : parts) {
        List<String> pair = Arrays.asList(sentence, reply);
        if (!seen.contains(pair)) {
          seen.add(pair);
          Window whole = wholeWindow(sentence, replyIds);
          if (whole != null) {
            out.add(new Viewed(TextViews.SENTENCES, whole));
          }
        }
      }
    }
    if (out.size() > MAX_WINDOWS) {
      throw new GuardException(GuardException.Reason.INPUT, (response == null ? "the prompt" : "the response")
          + " needs " + out.size() + " windows of " + maxLength + " tokens; the limit is " + MAX_WINDOWS);
    }
    return out;
  }

  /** {@code text} as read: itself where kept, else the view that reads it in its place ({@link TextViews#unread}). */
  private String asRead(String text, Set<String> unread) {
    if (!unread.contains("raw")) {
      return text;
    }
    return TextViews.view(unread.contains("normalized") ? "payload" : "normalized", text, manifest.fold);
  }

  /**
   * The first window of {@code prompt} (and of the response's tokens {@code response}, null for none) where it holds
   * the prompt whole, else null: the Python runtime's TextEncoder.whole_window.
   */
  private Window wholeWindow(String prompt, int[] response) {
    int[] p = tokenizer.encode(prompt);
    if (response == null) {
      return p.length <= singleBudget ? assemble(tokenizer.single, p, null) : null;
    }
    if (p.length > promptRoom(response.length)) {
      return null;
    }
    return assemble(tokenizer.pair, p, Arrays.copyOf(response, Math.min(response.length, pairBudget - p.length)));
  }

  /** The prompt's tokens a pair window keeps: what the response leaves, and at least half the budget. */
  private int promptRoom(int responseTokens) {
    return pairBudget - Math.min(responseTokens, pairBudget / 2);
  }

  private List<Window> allWindows(String prompt, String response) throws GuardException {
    // The texts were checked as given; a view of them may be longer (NFKC spells out ligatures) and is read
    // whole, as in the Python runtime, which caps only the text as given.
    int[] p = tokenizer.encode(prompt);
    List<Window> out = new ArrayList<>();
    if (response == null) {
      for (int start : starts(p.length, singleBudget)) {
        int[] part = Arrays.copyOfRange(p, start, Math.min(p.length, start + singleBudget));
        out.add(assemble(tokenizer.single, part, null));
      }
      return out;
    }
    int[] r = tokenizer.encode(response);
    int keep = Math.min(p.length, promptRoom(r.length));
    int[] whole = p;
    if (keep < p.length) {
      p = keepPromptEnd ? Arrays.copyOfRange(p, p.length - keep, p.length) : Arrays.copyOf(p, keep);
    }
    int size = pairBudget - keep;
    for (int start : starts(r.length, size)) {
      out.add(assemble(tokenizer.pair, p, Arrays.copyOfRange(r, start, Math.min(r.length, start + size))));
    }
    if (promptWindows && keep < whole.length) {
      // each other window of the prompt, joined to the response's first (docs/bundle.md, text.prompt_windows)
      int[] first = Arrays.copyOf(r, Math.min(r.length, size));
      for (int start : starts(whole.length, keep)) {
        int[] part = Arrays.copyOfRange(whole, start, Math.min(whole.length, start + keep));
        if (!Arrays.equals(part, p)) {
          out.add(assemble(tokenizer.pair, part, first));
        }
      }
    }
    return out;
  }

  /** Starts of windows of {@code size} tokens, each sharing {@code overlap} with the last, covering length. */
  private List<Integer> starts(int length, int size) {
    List<Integer> out = new ArrayList<>();
    if (length <= size) {
      out.add(0);
      return out;
    }
    for (int s = 0; s < length - overlap; s += size - overlap) {
      out.add(s);
    }
    return out;
  }

  private static Window assemble(SpecialTemplate template, int[] first, int[] second) {
    int n = template.specials + first.length + (second == null ? 0 : second.length);
    long[] ids = new long[n];
    long[] types = new long[n];
    int at = 0;
    for (SpecialTemplate.Part part : template.parts) {
      int[] chunk = part.sequence < 0 ? part.ids : part.sequence == 0 ? first : second;
      for (int id : chunk) {
        ids[at] = id;
        types[at++] = part.typeId;
      }
    }
    return new Window(ids, types);
  }

  /** The Python runtime's check_text: a string, at most MAX_INPUT_CHARS, and valid Unicode (no lone surrogate). */
  private static void checkInput(String prompt, String response) throws GuardException {
    checkText(prompt, "the prompt");
    if (response != null) {
      checkText(response, "the response");
    }
  }

  static String checkText(String text, String what) throws GuardException {
    if (text == null) {
      throw new GuardException(GuardException.Reason.INPUT, what + " is missing");
    }
    for (int i = 0; i < text.length(); i++) {
      char c = text.charAt(i);
      if (Character.isHighSurrogate(c) && i + 1 < text.length() && Character.isLowSurrogate(text.charAt(i + 1))) {
        i++;
      } else if (Character.isSurrogate(c)) {
        throw new GuardException(GuardException.Reason.INPUT,
            what + " is not valid Unicode text (lone surrogate at character " + text.codePointCount(0, i) + ")");
      }
    }
    int chars = text.codePointCount(0, text.length());
    if (chars > MAX_INPUT_CHARS) {
      throw new GuardException(GuardException.Reason.INPUT,
          what + " has " + chars + " characters; the limit is " + MAX_INPUT_CHARS);
    }
    return text;
  }
}
